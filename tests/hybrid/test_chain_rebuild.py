"""The hash chain in hybrid's maintenance: rebuild-cache restores the chain from PostgreSQL's rows (the hashes
copied there, and rows not copied to yet hashed from their content), so verify stays clean and new checkpoints
prove old and new transactions; reconcile names each row whose PostgreSQL copy does not hash to Redis's chain."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from tests.backends import REDIS_URL
from tests.hybrid.conftest import BankFactory, SettingsFactory, delete_keys
from tests.hybrid.support import drain, store_of
from tokenbank.chain import SigningKey, verify_proof
from tokenbank.storage.hybrid.backend import HybridStorage
from tokenbank.storage.hybrid.rebuild import rebuild_cache
from tokenbank.storage.hybrid.reconcile import reconcile

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


async def test_chain_survives_rebuild_cache(
    make_bank: BankFactory, hybrid_settings: SettingsFactory, key_prefix: str, tmp_path: Path
) -> None:
    key = SigningKey.generate()
    key.write(tmp_path / "k.pem")
    options = {"signing_key": str(tmp_path / "k.pem")}
    bank = await make_bank(**options)
    first = await bank.transfer("treasury", "alice", 10)
    await drain(store_of(bank))
    await bank.chain.seal()  # hashes copied to PostgreSQL
    late = await bank.transfer("treasury", "bob", 5)
    await drain(store_of(bank))  # copied, but its hash not yet
    await bank.close()

    await delete_keys(REDIS_URL, key_prefix)  # Redis lost everything, the chain with it
    raw = HybridStorage(hybrid_settings(enable_synchronization=False, **options))
    await raw.open()
    try:
        await rebuild_cache(raw)
    finally:
        await raw.close()

    restored = await make_bank(**options)
    newer = await restored.transfer("alice", "carol", 1)
    await drain(store_of(restored))
    report = await restored.verify()
    assert report.ok, report
    chain = {c.name: c.detail for c in report.checks if c.name.startswith("chain")}
    assert chain["chain"].startswith("4 entries chained"), chain  # the initial mint, three transfers
    assert chain["chain (PostgreSQL)"].startswith("4 entries chained"), chain
    await restored.chain.checkpoint()
    for tx in (first, late, newer):
        assert verify_proof(await restored.chain.proof(tx.id), key.public_pem())


async def test_reconcile_names_rows_whose_postgresql_copy_differs(make_bank: BankFactory) -> None:
    bank = await make_bank()
    txs = [await bank.transfer("treasury", f"u{i}", i + 1) for i in range(5)]
    store = store_of(bank)
    await drain(store)
    report = await reconcile(store)
    assert report.ok and report.chain_mismatches == [], report

    def tamper(conn: Connection) -> None:
        conn.execute(sa.text("ALTER TABLE tb_transactions DISABLE TRIGGER tb_transactions_immutable"))
        conn.execute(
            sa.text("UPDATE tb_transactions SET to_user_id = 'mallory' WHERE token = :t AND seq IN (:a, :b)"),
            {"t": bank.settings.symbol, "a": txs[1].seq, "b": txs[3].seq},
        )
        conn.execute(sa.text("ALTER TABLE tb_transactions ENABLE TRIGGER tb_transactions_immutable"))

    await store.sql.run_sync(tamper, write=True)
    report = await reconcile(store, full=True)
    assert report.chain_mismatches == [txs[1].seq, txs[3].seq] and not report.ok
