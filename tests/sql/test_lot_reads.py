"""The LotStore reads and verify's ``lots`` check of the SQL store, on rows written directly: the same queries serve
SQLite and PostgreSQL (whose id column is not byte-ordered by default: the spend order asks for "C")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from tests.backends import BoundBackend
from tokenbank import TokenBank
from tokenbank.storage.capabilities import LotStore
from tokenbank.storage.sql.backend import SqlStorage
from tokenbank.storage.sql.schema import accounts, lots

NOW = datetime.fromisoformat("2026-03-01T12:00:00+00:00")
HOUR = timedelta(hours=1)


@pytest.fixture
async def store(sql_backend: BoundBackend) -> AsyncIterator[SqlStorage]:
    async with TokenBank(sql_backend.settings()) as bank:
        assert isinstance(bank.storage, SqlStorage) and isinstance(bank.storage, LotStore)
        yield bank.storage


async def _write(store: SqlStorage, table: sa.Table, *rows: dict[str, Any]) -> None:
    def work(conn: sa.Connection) -> None:
        conn.execute(table.insert(), [{"token": store.token, **row} for row in rows])

    await store.run_sync(work, write=True)


def _lot(lot_id: str, user_id: str, remaining: int, *, expires: timedelta | None = None,
         available: timedelta | None = None, amount: int = 100) -> dict[str, Any]:  # fmt: skip
    return {
        "id": lot_id, "user_id": user_id, "amount": amount, "remaining": remaining, "category": None,
        "expires_at": None if expires is None else NOW + expires,
        "available_at": None if available is None else NOW + available, "created_at": NOW - 24 * HOUR,
    }  # fmt: skip


async def test_get_lots_in_spend_order_with_ids_in_byte_order(store: SqlStorage) -> None:
    # "a-c" < "ab" in byte order; a linguistic collation, which skips the hyphen, says the opposite.
    await _write(
        store, lots,
        _lot("ab", "alice", 10, expires=2 * HOUR), _lot("a-c", "alice", 10, expires=2 * HOUR),
        _lot("z", "alice", 10, expires=HOUR), _lot("n-2", "alice", 10), _lot("n1", "alice", 10),
        _lot("p", "alice", 10, expires=3 * HOUR, available=HOUR), _lot("gone", "alice", 0, expires=HOUR),
        _lot("bobs", "bob", 10, expires=HOUR),
    )  # fmt: skip
    got = await store.get_lots("alice")
    assert [lot.id for lot in got] == ["z", "a-c", "ab", "p", "n-2", "n1"]
    first = got[0]
    assert (first.user_id, first.amount, first.remaining, first.expires_at, first.available_at) == (
        "alice", 100, 10, NOW + HOUR, None,
    )  # fmt: skip
    assert got[3].available_at == NOW + HOUR and got[0].created_at == NOW - 24 * HOUR
    assert await store.get_lots("nobody") == []


async def test_expired_lots_soonest_first(store: SqlStorage) -> None:
    await _write(
        store, lots,
        _lot("late", "alice", 5, expires=-HOUR), _lot("early", "bob", 5, expires=-2 * HOUR),
        _lot("now", "carol", 5, expires=timedelta(0)), _lot("future", "dave", 5, expires=HOUR),
        _lot("never", "erin", 5), _lot("spent", "fred", 0, expires=-3 * HOUR),
    )  # fmt: skip
    assert await store.expired_lots(NOW, 10) == [("early", "bob"), ("late", "alice"), ("now", "carol")]
    assert await store.expired_lots(NOW, 1) == [("early", "bob")]
    # Another offset than UTC names the same moment.
    assert await store.expired_lots(NOW.astimezone(timezone(timedelta(hours=5))), 10) == [
        ("early", "bob"), ("late", "alice"), ("now", "carol"),
    ]  # fmt: skip


async def test_spendable_balances_subtract_what_lots_lock(store: SqlStorage) -> None:
    await _write(
        store, accounts,
        {"user_id": "alice", "balance": 1000, "held": 0, "has_lots": True},
        {"user_id": "bob", "balance": 70, "held": 0, "has_lots": False},
        {"user_id": "carol", "balance": 40, "held": 0, "has_lots": True},
    )  # fmt: skip
    await _write(
        store, lots,
        _lot("pending", "alice", 100, available=HOUR), _lot("expired", "alice", 200, expires=-HOUR),
        _lot("open", "alice", 300, expires=HOUR), _lot("swept", "alice", 0, expires=-HOUR),
        _lot("c", "carol", 40, available=HOUR),
    )  # fmt: skip
    assert await store.spendable_balances(["alice", "bob", "carol", "nobody"], NOW) == {
        "alice": 700, "bob": 70, "carol": 0, "nobody": 0,
    }  # fmt: skip
    # Two hours on: the pending lot is spendable, the open one has expired.
    assert await store.spendable_balances(["alice", "carol"], NOW + 2 * HOUR) == {"alice": 500, "carol": 40}


async def test_verify_names_a_lot_outside_its_grant(store: SqlStorage) -> None:
    [check] = [c for c in await store.verify() if c.name == "lots"]
    assert check.ok
    await _write(store, lots, _lot("fine", "alice", 100), _lot("over", "bob", 101), _lot("under", "carol", -1))
    [check] = [c for c in await store.verify() if c.name == "lots"]
    assert not check.ok and check.detail == "lot over: remaining 101 of 100"
