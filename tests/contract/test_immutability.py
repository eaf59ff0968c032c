"""History is immutable in the database itself: raw UPDATE/DELETE on transactions and audit are refused.

The raw SQL goes through ``SqlStorage.run_sync`` (the store's own connection, one transaction), so the only
thing standing between it and the rows is the database: the triggers and CHECK constraints of the schema.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from tests.backends import BoundBackend, params
from tests.support import snapshot
from tokenbank import StorageError, TokenBank


@pytest.fixture
async def sql_bank(sql_backend: BoundBackend) -> AsyncIterator[TokenBank]:
    async with TokenBank(sql_backend.settings(initial_supply=1000)) as bank:
        await bank.transfer("treasury", "alice", 10, metadata={"a": 1})
        await bank.mint("bob", 5, reason="bonus")
        yield bank
        assert (await bank.verify()).ok


async def raw(bank: TokenBank, statement: str) -> Any:
    """Execute raw SQL (bound ``:token``) in one write transaction on the bank's own database connection."""
    run_sync: Callable[..., Any] = bank.storage.run_sync  # type: ignore[attr-defined]
    query = sa.text(statement)

    def work(conn: Connection) -> Any:
        result = conn.execute(query, {"token": bank.settings.symbol} if ":token" in statement else {})
        return result.scalar() if result.returns_rows else result.rowcount

    return await run_sync(work, write=True)


STATEMENTS = [
    "UPDATE tb_transactions SET amount = amount + 1 WHERE token = :token",
    "UPDATE tb_transactions SET metadata = NULL WHERE token = :token",
    "DELETE FROM tb_transactions WHERE token = :token",
    "UPDATE tb_audit SET action = 'nothing' WHERE token = :token",
    "DELETE FROM tb_audit WHERE token = :token",
]


@pytest.mark.parametrize("statement", STATEMENTS, ids=[s.split(" WHERE")[0] for s in STATEMENTS])
async def test_raw_changes_to_history_are_refused(sql_bank: TokenBank, statement: str) -> None:
    before = await snapshot(sql_bank)
    with pytest.raises(StorageError, match="immutable"):
        await raw(sql_bank, statement)
    assert await snapshot(sql_bank) == before


@pytest.mark.parametrize("sql_backend", params(lambda b: b.sql and "postgres" in b.services), indirect=True)
@pytest.mark.parametrize("table", ["tb_transactions", "tb_audit"])
async def test_truncate_is_refused_on_postgres(sql_bank: TokenBank, table: str) -> None:
    before = await snapshot(sql_bank)
    with pytest.raises(StorageError, match="immutable"):
        await raw(sql_bank, f"TRUNCATE {table}")
    assert await snapshot(sql_bank) == before


async def test_negative_held_amounts_are_refused_by_the_database(sql_bank: TokenBank) -> None:
    before = await snapshot(sql_bank)
    with pytest.raises(StorageError):
        await raw(sql_bank, "UPDATE tb_accounts SET held = -1 WHERE token = :token AND user_id = 'alice'")
    assert await snapshot(sql_bank) == before


async def test_verify_flags_a_balance_below_what_its_overdraft_allows(sql_bank: TokenBank) -> None:
    """A balance may be negative (an overdraft), so the database takes one; verify names an account below zero
    without an overdraft, or below minus its overdraft."""
    name = "no balance below its overdraft"
    alice = "UPDATE tb_accounts SET balance = {} WHERE token = :token AND user_id = 'alice'"

    async def flagged() -> bool:
        return any(c.name == name and not c.ok for c in (await sql_bank.verify()).checks)

    await raw(sql_bank, alice.format(-1))
    assert await flagged()
    await raw(sql_bank, alice.format(10))
    await sql_bank.set_limits("alice", overdraft=5)
    await raw(sql_bank, alice.format(-5))
    assert not await flagged()
    await raw(sql_bank, alice.format(-501))  # base units: 0.01 below -5.00
    assert await flagged()
    await raw(sql_bank, alice.format(1000))
    assert (await sql_bank.verify()).ok


async def test_the_ledger_still_appends(sql_bank: TokenBank) -> None:
    count = "SELECT count(*) FROM tb_transactions WHERE token = :token"
    assert await raw(sql_bank, count) == 3
    await sql_bank.transfer("alice", "bob", 1)
    assert await raw(sql_bank, count) == 4
