"""Tampering with the stored journal is caught by verify()'s chain check, which names the first broken seq.

The immutability triggers are lifted for these tests only (SQLite: dropped in the test's own database file;
PostgreSQL: disabled and enabled again around the change), as someone with direct database access could.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from tests.backends import BoundBackend, by_name, params
from tokenbank import TokenBank
from tokenbank.storage.capabilities import ChainStore

_SQL_STORES = params(by_name("sqlite", "postgres"))


def _chain_check(report: Any, name: str = "chain") -> Any:
    [check] = [c for c in report.checks if c.name == name]
    return check


async def _sql(bank: TokenBank, *statements: str, **params: Any) -> None:
    """Run statements in one transaction with the journal's immutability triggers lifted."""
    run_sync: Callable[..., Any] = bank.storage.run_sync  # type: ignore[attr-defined]

    def work(conn: Connection) -> None:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execute(sa.text("ALTER TABLE tb_transactions DISABLE TRIGGER tb_transactions_immutable"))
        else:
            conn.execute(sa.text("DROP TRIGGER IF EXISTS tb_transactions_no_update"))
            conn.execute(sa.text("DROP TRIGGER IF EXISTS tb_transactions_no_delete"))
        for statement in statements:
            conn.execute(sa.text(statement), {"token": bank.settings.symbol, **params})
        if postgres:
            conn.execute(sa.text("ALTER TABLE tb_transactions ENABLE TRIGGER tb_transactions_immutable"))

    await run_sync(work, write=True)


async def _gap(bank: TokenBank) -> None:
    """Leave an unused seq in the token's journal (another token's row on SQLite, a skipped value on PostgreSQL)."""
    run_sync: Callable[..., Any] = bank.storage.run_sync  # type: ignore[attr-defined]

    def work(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT nextval(pg_get_serial_sequence('tb_transactions', 'seq'))"))
        else:
            conn.execute(sa.text(
                "INSERT INTO tb_transactions (seq, id, token, type, to_user_id, amount, created_at) SELECT "
                "max(seq) + 1, 'other-' || (max(seq) + 1), 'OTHER', 'mint', 'x', 1, '2026-01-01 00:00:00.000000' "
                "FROM tb_transactions"
            ))  # fmt: skip

    await run_sync(work, write=True)


@pytest.fixture
async def journal(backend: BoundBackend) -> AsyncIterator[tuple[TokenBank, list[int]]]:
    """A bank with seven sealed transfers (a seq gap between the third and the fourth on SQL) and their seqs."""
    async with TokenBank(backend.settings(initial_supply=1000)) as bank:
        for i in range(7):
            if i == 3 and backend.sql:
                await _gap(bank)
            await bank.transfer("treasury", f"user{i}", i + 1, metadata={"i": i})
        await bank.chain.seal()
        store = bank.storage
        assert isinstance(store, ChainStore)
        seqs = [e.tx.seq for e in await store.chain_entries(0, 100)]
        assert _chain_check(await bank.verify()).ok
        yield bank, seqs


@pytest.mark.parametrize("backend", _SQL_STORES, indirect=True)
async def test_sql_edited_amount(journal: tuple[TokenBank, list[int]]) -> None:
    bank, seqs = journal
    await _sql(bank, "UPDATE tb_transactions SET amount = amount + 1 WHERE token = :token AND seq = :seq", seq=seqs[4])
    check = _chain_check(await bank.verify())
    assert not check.ok and check.detail.startswith(f"first broken seq {seqs[4]}:"), check


@pytest.mark.parametrize("backend", _SQL_STORES, indirect=True)
async def test_sql_deleted_row(journal: tuple[TokenBank, list[int]]) -> None:
    bank, seqs = journal
    await _sql(bank, "DELETE FROM tb_transactions WHERE token = :token AND seq = :seq", seq=seqs[4])
    check = _chain_check(await bank.verify())
    assert not check.ok and check.detail.startswith(f"first broken seq {seqs[5]}:"), check


@pytest.mark.parametrize("backend", _SQL_STORES, indirect=True)
async def test_sql_inserted_row(journal: tuple[TokenBank, list[int]]) -> None:
    bank, seqs = journal
    gap = seqs[3] + 1  # seqs[0] is the initial mint
    assert gap < seqs[4]
    dialect = bank.storage.run_sync  # type: ignore[attr-defined]
    postgres = await dialect(lambda conn: conn.dialect.name == "postgresql")
    if postgres:
        forged = (
            "INSERT INTO tb_transactions (seq, id, token, type, to_user_id, amount, created_at, hash) "
            "OVERRIDING SYSTEM VALUE VALUES (:seq, 'forged', :token, 'mint', 'mallory', 100, now(), repeat('0', 64))"
        )
    else:  # the other token's row at the gap becomes one of ours
        forged = "UPDATE tb_transactions SET token = :token WHERE token = 'OTHER' AND seq = :seq"
    await _sql(bank, forged, seq=gap)
    check = _chain_check(await bank.verify())
    assert not check.ok and check.detail.startswith(f"first broken seq {gap}:"), check


@pytest.mark.parametrize("backend", _SQL_STORES, indirect=True)
async def test_sql_reordered_rows(journal: tuple[TokenBank, list[int]]) -> None:
    bank, seqs = journal
    a, b = seqs[4], seqs[5]
    await _sql(
        bank,
        "UPDATE tb_transactions SET seq = -1 WHERE token = :token AND seq = :a",
        "UPDATE tb_transactions SET seq = :a WHERE token = :token AND seq = :b",
        "UPDATE tb_transactions SET seq = :b WHERE token = :token AND seq = -1",
        a=a,
        b=b,
    )
    check = _chain_check(await bank.verify())
    assert not check.ok and check.detail.startswith(f"first broken seq {a}:"), check


def _redis(bank: TokenBank) -> Any:
    return bank.storage.client, bank.storage.keys  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", params(by_name("redis")), indirect=True)
async def test_redis_edited_transaction_json(journal: tuple[TokenBank, list[int]]) -> None:
    bank, seqs = journal
    client, keys = _redis(bank)
    item = await client.lindex(keys.chain, 4)
    tx_id = item.partition(":")[2]
    tx = json.loads(await client.hget(keys.tx, tx_id))
    tx["amount"] = str(int(tx["amount"]) + 1)
    await client.hset(keys.tx, tx_id, json.dumps(tx))
    check = _chain_check(await bank.verify())
    assert not check.ok and check.detail.startswith(f"first broken seq {seqs[4]}:"), check


@pytest.mark.parametrize("backend", params(by_name("redis")), indirect=True)
async def test_redis_entry_removed_from_the_index(journal: tuple[TokenBank, list[int]]) -> None:
    bank, seqs = journal
    client, keys = _redis(bank)
    await client.lrem(keys.chain, 1, await client.lindex(keys.chain, 4))
    check = _chain_check(await bank.verify())
    assert not check.ok and check.detail.startswith(f"first broken seq {seqs[5]}:"), check


@pytest.mark.parametrize("backend", params(by_name("redis")), indirect=True)
async def test_redis_entry_inserted_and_entries_reordered(journal: tuple[TokenBank, list[int]]) -> None:
    bank, seqs = journal
    client, keys = _redis(bank)
    fourth, fifth = await client.lindex(keys.chain, 4), await client.lindex(keys.chain, 5)
    await client.lset(keys.chain, 4, fifth)
    await client.lset(keys.chain, 5, fourth)
    check = _chain_check(await bank.verify())
    assert not check.ok and check.detail.startswith(f"first broken seq {seqs[5]}:"), check  # met in 4th's place

    await client.lset(keys.chain, 4, fourth)
    await client.lset(keys.chain, 5, fifth)
    assert _chain_check(await bank.verify()).ok
    tx = json.loads(await client.hget(keys.tx, fourth.partition(":")[2]))
    tx["id"], tx["to_user_id"] = "forged", "mallory"
    await client.hset(keys.tx, "forged", json.dumps(tx))
    await client.linsert(keys.chain, "BEFORE", fourth, f"{seqs[4]}:forged")
    check = _chain_check(await bank.verify())
    assert not check.ok and check.detail.startswith(f"first broken seq {seqs[4]}:"), check


@pytest.mark.parametrize("backend", params(by_name("hybrid")), indirect=True)
async def test_hybrid_postgres_copy_edited(journal: tuple[TokenBank, list[int]]) -> None:
    bank, seqs = journal
    sql = bank.storage.sql  # type: ignore[attr-defined]
    for _ in range(200):  # until the sync has copied every entry and the hashes were carried over
        await bank.chain.seal()
        copied = await sql.chain_entries(0, 100)
        if len(copied) == len(seqs) and all(e.hash for e in copied):
            break
        await asyncio.sleep(0.05)
    assert [(e.tx.seq, e.hash) for e in copied] == [
        (e.tx.seq, e.hash)
        for e in await bank.storage.chain_entries(0, 100)  # type: ignore[attr-defined]
    ]
    await _sql(bank, "UPDATE tb_transactions SET amount = amount + 1 WHERE token = :token AND seq = :seq", seq=seqs[4])
    report = await bank.verify()
    assert _chain_check(report).ok  # Redis's chain is intact
    check = _chain_check(report, "chain (PostgreSQL)")
    assert not check.ok and check.detail.startswith(f"first broken seq {seqs[4]}:"), check


@pytest.fixture
async def lot_journal(backend: BoundBackend) -> AsyncIterator[tuple[TokenBank, int, int]]:
    """A bank where alice's transfer took 3 of her granted lot's 5, sealed: the bank, the grant's seq and the
    transfer's seq."""
    async with TokenBank(backend.settings(initial_supply=1000)) as bank:
        later = datetime.now(UTC) + timedelta(days=1, microseconds=7)
        grant = await bank.grant("alice", 5, category="promo", expires_at=later)
        spend = await bank.transfer("alice", "bob", 3)
        assert spend.lot_moves and spend.lot_moves[0].lot_id == grant.id
        await bank.chain.seal()
        assert _chain_check(await bank.verify()).ok
        yield bank, grant.seq, spend.seq


@pytest.mark.parametrize("backend", _SQL_STORES, indirect=True)
async def test_sql_edited_lot_move_and_grant_terms(lot_journal: tuple[TokenBank, int, int]) -> None:
    bank, grant_seq, spend_seq = lot_journal
    forged = json.dumps([["another-lot", "3"]])
    await _sql(bank, "UPDATE tb_transactions SET lots = :lots WHERE token = :token AND seq = :seq", seq=spend_seq,
               lots=forged)  # fmt: skip
    check = _chain_check(await bank.verify())
    assert not check.ok and check.detail.startswith(f"first broken seq {spend_seq}:"), check
    await _sql(bank, "UPDATE tb_transactions SET category = 'other' WHERE token = :token AND seq = :seq", seq=grant_seq)
    check = _chain_check(await bank.verify())
    assert not check.ok and check.detail.startswith(f"first broken seq {grant_seq}:"), check


@pytest.mark.parametrize("backend", params(by_name("redis")), indirect=True)
async def test_redis_edited_lot_move(lot_journal: tuple[TokenBank, int, int]) -> None:
    bank, _, spend_seq = lot_journal
    client, keys = _redis(bank)
    [tx_id] = [item.partition(":")[2] for item in await client.lrange(keys.chain, 0, -1)
               if int(item.partition(":")[0]) == spend_seq]  # fmt: skip
    tx = json.loads(await client.hget(keys.tx, tx_id))
    tx["lots"] = [[lot_id, str(int(units) - 1)] for lot_id, units in tx["lots"]]
    await client.hset(keys.tx, tx_id, json.dumps(tx))
    check = _chain_check(await bank.verify())
    assert not check.ok and check.detail.startswith(f"first broken seq {spend_seq}:"), check


@pytest.mark.parametrize("backend", params(by_name("hybrid")), indirect=True)
async def test_hybrid_postgres_copy_of_a_lot_move_edited(lot_journal: tuple[TokenBank, int, int]) -> None:
    bank, _, spend_seq = lot_journal
    sql = bank.storage.sql  # type: ignore[attr-defined]
    for _ in range(200):  # until the sync has copied every entry and the hashes were carried over
        await bank.chain.seal()
        copied = await sql.chain_entries(0, 100)
        if copied and copied[-1].tx.seq == spend_seq and all(e.hash for e in copied):
            break
        await asyncio.sleep(0.05)
    assert _chain_check(await bank.verify(), "chain (PostgreSQL)").ok  # PostgreSQL's copy hashes as Redis did
    await _sql(bank, "UPDATE tb_transactions SET lots = NULL WHERE token = :token AND seq = :seq", seq=spend_seq)
    report = await bank.verify()
    assert _chain_check(report).ok
    check = _chain_check(report, "chain (PostgreSQL)")
    assert not check.ok and check.detail.startswith(f"first broken seq {spend_seq}:"), check
