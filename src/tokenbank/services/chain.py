"""``bank.chain``: seal, verify, checkpoint and prove the journal's hash chain (see docs/chain.md).

The store keeps the hashes and checkpoints (:class:`~tokenbank.storage.capabilities.ChainStore`); this service
owns the rules, the same for every store: which hashes follow the chain, what a checkpoint covers and signs, and
what a proof carries so that :func:`tokenbank.chain.verify_proof` needs nothing else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tokenbank.chain import merkle
from tokenbank.chain.encoding import GENESIS, EntryFields, chain_hash, entry_hash
from tokenbank.chain.keys import SigningKey
from tokenbank.chain.proofs import Checkpoint, InclusionProof, verify_checkpoint
from tokenbank.errors import (
    ConfigurationError,
    StorageError,
    TransactionNotFoundError,
    TransactionStateError,
)
from tokenbank.ids import check_lookup_id
from tokenbank.storage.capabilities import ChainEntry, ChainStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tokenbank.ledger import Ledger

PAGE = 5000
VERIFY_SEAL_WAIT = 2.0
"""Seconds verify() lets the sealer wait for writes in flight; what it cannot seal is reported as pending."""
logger = logging.getLogger("tokenbank")


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What a walk over one copy of the chain found. ``broken_seq`` is the first entry whose stored hash does not
    follow the chain (None: intact); ``legacy`` entries predate the chain (stored before it existed), ``pending``
    ones are not hashed yet (PostgreSQL's sealer or hybrid's copy has not reached them)."""

    label: str
    ok: bool
    entries: int
    legacy: int
    pending: int
    checkpoints: int
    broken_seq: int | None = None
    problem: str = ""

    @property
    def detail(self) -> str:
        if not self.ok:
            return f"first broken seq {self.broken_seq}: {self.problem}" if self.broken_seq else self.problem
        parts = [f"{self.entries} entries chained", f"{self.checkpoints} checkpoints"]
        if self.pending:
            parts.append(f"{self.pending} not sealed yet")
        if self.legacy:
            parts.append(f"{self.legacy} older than the chain")
        return ", ".join(parts)


class ChainService:
    """The hash chain of one bank's token."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._key: SigningKey | None = None

    @property
    def _store(self) -> ChainStore:
        store = self._ledger.storage
        if not isinstance(store, ChainStore):  # every built-in store is one
            raise ConfigurationError(f"{type(store).__name__} keeps no hash chain")
        return store

    @property
    def token(self) -> str:
        return self._ledger.settings.symbol

    def signing_key(self) -> SigningKey:
        """The key of ``TOKEN_SIGNING_KEY`` (read once). Raises ConfigurationError when unset or unreadable."""
        if self._key is None:
            path = self._ledger.settings.signing_key
            if not path:
                raise ConfigurationError("TOKEN_SIGNING_KEY is not set: create a key with `tokenbank keys generate`")
            self._key = SigningKey.from_file(path)
        return self._key

    async def seal(self) -> None:
        """Hash every entry that can no longer change (PostgreSQL and Redis hash after the write; SQLite as it
        writes). Raises StorageError when the stored chain is broken, StorageUnavailableError."""
        await self._store.chain_seal()

    async def _walk(self, store: ChainStore) -> AsyncIterator[ChainEntry]:
        after = 0
        while page := await store.chain_entries(after, PAGE):
            for item in page:
                yield item
            after = page[-1].tx.seq

    async def verify(self) -> list[ChainReport]:
        """Walk every copy of the chain: each stored hash must be the hash of its entry after the previous one,
        no unhashed entry may sit between hashed ones, and each stored checkpoint must match the chain (root, head,
        size; its signature too when ``TOKEN_SIGNING_KEY`` is set). Seals first. Raises StorageUnavailableError."""
        store = self._ledger.storage
        if not isinstance(store, ChainStore):
            return []
        try:  # best effort: a broken chain stops the sealer (the walk names where), a busy one reports pending
            await store.chain_seal(wait=VERIFY_SEAL_WAIT)
        except StorageError:
            logger.warning("verify: the chain was not sealed first", exc_info=True)
        key = self.signing_key() if self._ledger.settings.signing_key else None
        return [await self._verify_one(copy, key) for copy in (store, *store.chain_mirrors())]

    async def _verify_one(self, store: ChainStore, key: SigningKey | None) -> ChainReport:
        label = store.chain_label
        checkpoints = await store.chain_checkpoints(0, 1_000_000)
        cp_index = 0
        prev, chained, legacy, pending, first_pending = GENESIS, 0, 0, 0, 0
        leaves: list[bytes] = []

        def broken(seq: int | None, problem: str) -> ChainReport:
            return ChainReport(label, False, chained, legacy, pending, len(checkpoints), seq, problem)

        async for item in self._walk(store):
            seq = item.tx.seq
            if item.hash is None:
                if not chained:
                    legacy += 1
                elif store.chain_hashes_on_write():
                    return broken(seq, "an entry without a hash follows hashed entries (every entry is hashed "
                                       "as it is written here)")  # fmt: skip
                else:
                    pending += 1
                    first_pending = first_pending or seq
                continue
            if pending:
                return broken(first_pending, "an entry without a hash sits between hashed entries")
            if chain_hash(prev, self.token, item.tx) != item.hash:
                return broken(seq, "its stored hash is not the hash of its content after the previous entry "
                                   "(changed, removed, inserted or reordered entries)")  # fmt: skip
            prev = item.hash
            chained += 1
            leaves.append(bytes.fromhex(item.hash))
            while cp_index < len(checkpoints) and checkpoints[cp_index].seq <= seq:
                cp = checkpoints[cp_index]
                problem = _checkpoint_problem(cp, seq, prev, leaves, key)
                if problem:
                    return broken(cp.seq, problem)
                leaves, cp_index = [], cp_index + 1
        if cp_index < len(checkpoints):
            return broken(checkpoints[cp_index].seq, "a checkpoint names an entry the chain does not have")
        return ChainReport(label, True, chained, legacy, pending, len(checkpoints))

    async def checkpoint(self) -> Checkpoint:
        """Sign a Merkle root over the entries hashed since the last checkpoint and store it. With nothing new
        since then, the last checkpoint is returned unchanged. Raises ConfigurationError (no signing key),
        TransactionStateError (no entry hashed yet), StorageError (the chain is broken: nothing is signed)."""
        key = self.signing_key()
        store = self._store
        for _ in range(5):
            await store.chain_seal()
            last = await store.chain_last_checkpoint()
            after = 0 if last is None else last.seq
            prev = GENESIS if last is None else last.head
            leaves: list[bytes] = []
            first_seq = seq = 0
            async for item in self._walk_from(store, after):
                if item.hash is None:
                    if leaves:
                        break
                    continue  # older than the chain
                if chain_hash(prev, self.token, item.tx) != item.hash:
                    raise StorageError(f"chain broken at seq {item.tx.seq}; nothing was signed (run verify)")
                prev, seq = item.hash, item.tx.seq
                first_seq = first_seq or seq
                leaves.append(bytes.fromhex(item.hash))
            if not leaves:
                if last is None:
                    raise TransactionStateError("nothing to checkpoint: no journal entry is hashed yet")
                return last
            checkpoint = Checkpoint.signed(
                key, token=self.token, seq=seq, root=merkle.root(leaves).hex(), first_seq=first_seq, size=len(leaves),
                head=prev, previous_seq=after, created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            )  # fmt: skip
            if await store.chain_add_checkpoint(checkpoint):
                return checkpoint
        raise StorageError("checkpoints kept being added concurrently; try again")

    async def _walk_from(self, store: ChainStore, after: int) -> AsyncIterator[ChainEntry]:
        while page := await store.chain_entries(after, PAGE):
            for item in page:
                yield item
            after = page[-1].tx.seq

    async def checkpoints(self, *, after_seq: int = 0, limit: int = 100) -> list[Checkpoint]:
        """Stored checkpoints ending above ``after_seq``, oldest first."""
        return await self._store.chain_checkpoints(after_seq, limit)

    async def proof(self, tx_id: str) -> InclusionProof:
        """An inclusion proof of the transaction in the checkpoint that covers it. Raises
        TransactionNotFoundError, TransactionStateError (not covered by a checkpoint yet: call
        :meth:`checkpoint`), StorageError (the stored chain does not match the checkpoint)."""
        check_lookup_id(tx_id, "transaction")
        store = self._store
        found = await store.chain_entry(tx_id)
        if found is None:
            raise TransactionNotFoundError(f"no transaction {tx_id!r}")
        seq = found.tx.seq
        covering = await store.chain_checkpoints(seq - 1, 1)
        cp = covering[0] if covering else None
        if cp is None or cp.first_seq > seq or found.hash is None:
            raise TransactionStateError(
                f"transaction {tx_id} (seq {seq}) is not in a checkpoint yet; create one with bank.chain.checkpoint()"
            )
        leaves: list[bytes] = []
        index, prev, before = -1, GENESIS, GENESIS
        if cp.previous_seq:
            earlier = await store.chain_checkpoints(cp.previous_seq - 1, 1)
            prev = before = earlier[0].head if earlier else GENESIS
        async for item in self._walk_from(store, cp.previous_seq):
            if item.tx.seq > cp.seq:
                break
            if item.hash is None:
                continue
            if item.tx.seq == seq:
                index, before = len(leaves), prev
            leaves.append(bytes.fromhex(item.hash))
            prev = item.hash
        entry = EntryFields.of(self.token, found.tx)
        if index < 0 or merkle.root(leaves).hex() != cp.root or entry_hash(before, entry) != found.hash:
            raise StorageError(f"the stored chain does not match checkpoint {cp.seq}; run verify")
        path = tuple(p.hex() for p in merkle.path(leaves, index))
        return InclusionProof(entry=entry, prev=before, leaf=found.hash, index=index, path=path, checkpoint=cp)


def _checkpoint_problem(cp: Checkpoint, seq: int, head: str, leaves: list[bytes], key: SigningKey | None) -> str:
    if cp.seq != seq or cp.head != head:
        return "the checkpoint's head is not the chain's hash at its seq"
    if cp.size != len(leaves) or merkle.root(leaves).hex() != cp.root:
        return "the checkpoint's Merkle root does not match the entries it covers"
    if key is not None and cp.key_id == key.key_id and not verify_checkpoint(cp, key.public_pem()):
        return "the checkpoint's signature is not valid"
    return ""
