"""The journal's hash chain on every backend: every transaction type hashed and chained in seq order, signed
checkpoints, inclusion proofs that verify with the public key alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends import BoundBackend
from tokenbank import TokenBank
from tokenbank.chain import GENESIS, SigningKey, chain_hash, verify_proof
from tokenbank.errors import ConfigurationError, TransactionNotFoundError, TransactionStateError
from tokenbank.storage.capabilities import ChainStore

ALL_TYPES = {"transfer", "mint", "burn", "hold", "capture", "void", "reversal"}


async def _every_type(bank: TokenBank) -> list[str]:
    """One transaction of each type; the ids written."""
    ids = [(await bank.transfer("treasury", "alice", "12.5", metadata={"order": 42, "note": "é"})).id]
    ids.append((await bank.mint("bob", 7, reason="bonus")).id)
    ids.append((await bank.burn("bob", 1, reason="expired")).id)
    held = await bank.hold("treasury", "carol", 10, expires_in=60)
    await bank.capture(held.id, 4)  # a capture and a void (the released rest)
    other = await bank.hold("treasury", "carol", 3, expires_in=60, idempotency_key="hold-2")
    await bank.void(other.id)
    ids.append((await bank.reverse(ids[0], reason="refund")).id)
    return ids


async def test_every_transaction_type_is_hashed_and_chained(backend: BoundBackend) -> None:
    async with TokenBank(backend.settings(initial_supply=1000)) as bank:
        await _every_type(bank)
        await bank.chain.seal()
        store = bank.storage
        assert isinstance(store, ChainStore)
        entries = await store.chain_entries(0, 1000)
        assert {e.tx.type for e in entries} == ALL_TYPES
        seqs = [e.tx.seq for e in entries]
        assert seqs == sorted(seqs)
        prev = GENESIS
        for entry in entries:
            assert entry.hash == chain_hash(prev, bank.settings.symbol, entry.tx)
            prev = entry.hash
        report = await bank.verify()
        chain_checks = [c for c in report.checks if c.name.startswith("chain")]
        assert chain_checks and all(c.ok for c in chain_checks), chain_checks
        assert f"{len(entries)} entries chained" in chain_checks[0].detail


async def test_checkpoints_and_offline_proofs(backend: BoundBackend, tmp_path: Path) -> None:
    key = SigningKey.generate()
    key.write(tmp_path / "signing.pem")
    public = key.public_pem()
    async with TokenBank(backend.settings(initial_supply=1000, signing_key=str(tmp_path / "signing.pem"))) as bank:
        ids = await _every_type(bank)
        first = await bank.chain.checkpoint()
        assert first.previous_seq == 0 and first.size >= 8
        assert await bank.chain.checkpoint() == first  # nothing new: the same checkpoint, none added
        assert await bank.chain.checkpoints() == [first]
        proofs = [await bank.chain.proof(tx_id) for tx_id in ids]
        assert all(verify_proof(p.to_json(), public) for p in proofs)
        assert not verify_proof(proofs[0], SigningKey.generate().public_pem())

        later = await bank.transfer("treasury", "bob", 1)
        with pytest.raises(TransactionStateError, match="not in a checkpoint yet"):
            await bank.chain.proof(later.id)
        second = await bank.chain.checkpoint()
        assert (second.previous_seq, second.first_seq, second.seq, second.size) == (first.seq, later.seq, later.seq, 1)
        assert verify_proof(await bank.chain.proof(later.id), public)
        assert verify_proof(await bank.chain.proof(ids[1]), public)  # still proven by the first checkpoint
        with pytest.raises(TransactionNotFoundError):
            await bank.chain.proof("01900000-0000-7000-8000-000000000000")
        assert (await bank.verify()).ok


async def test_checkpoint_of_an_empty_journal_and_without_a_key(backend: BoundBackend, tmp_path: Path) -> None:
    SigningKey.generate().write(tmp_path / "k.pem")
    async with TokenBank(backend.settings(initial_supply=0, signing_key=str(tmp_path / "k.pem"))) as bank:
        with pytest.raises(TransactionStateError, match="nothing to checkpoint"):
            await bank.chain.checkpoint()
        assert await bank.chain.checkpoints() == []
        assert (await bank.verify()).ok
    async with TokenBank(backend.settings(initial_supply=5)) as bank:
        with pytest.raises(ConfigurationError, match="TOKEN_SIGNING_KEY"):
            await bank.chain.checkpoint()
