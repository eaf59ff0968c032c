"""PostgreSQL's set-based transfers keep a spend window's running total even when the controls row moved between
the call's read and its update (as hybrid mode's sync may move it without the account's lock): the update by row
id misses it and the update by key adds the spends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.backends import BoundBackend, Scope, by_name, params
from tokenbank import LimitExceededError, TokenBank

# Moves the sender's controls row (a new row version, so a new row id) right after the call stored its spends,
# which is between the call's read of the controls and its update of the totals.
_MOVE = (
    "CREATE FUNCTION tb_test_move_controls() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN "
    "UPDATE tb_account_controls SET freeze_reason = freeze_reason WHERE token = NEW.token AND user_id = NEW.user_id; "
    "RETURN NULL; END; $fn$",
    "CREATE TRIGGER tb_test_move_controls AFTER INSERT ON tb_account_spends "
    "FOR EACH ROW EXECUTE FUNCTION tb_test_move_controls()",
)


@pytest.fixture(params=params(by_name("postgres")))
def pg_backend(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    return request.param.bind(Scope(tmp_path))  # type: ignore[no-any-return]


@pytest.fixture
async def bank(pg_backend: BoundBackend) -> AsyncIterator[TokenBank]:
    async with TokenBank(pg_backend.settings(initial_supply=1000)) as bank:
        yield bank


async def test_a_controls_row_moved_mid_call_still_gets_its_spends(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 100)
    await bank.set_limits("alice", spend_per_window=(1, 3600))

    def install(conn: Any) -> None:
        for statement in _MOVE:
            conn.execute(sa.text(statement))

    await bank.storage.run_sync(install, write=True)  # type: ignore[attr-defined]

    async def one(n: int) -> bool:
        try:
            await bank.transfer("alice", f"shop{n % 3}", Decimal("0.10"))
        except LimitExceededError:
            return False
        return True

    for _ in range(3):  # waves of concurrent transfers: batched calls, each checked against the stored total
        await asyncio.gather(*(one(n) for n in range(8)))
    assert await bank.get_balance("alice") == 99
    assert (await bank.get_account("alice")).spent_in_window == 1
