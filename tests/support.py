"""Helpers shared by the behaviour tests (public API only: no reaching into a store)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.backends import BoundBackend
from tokenbank import TokenBank, TokenBankError


@asynccontextmanager
async def open_bank(backend: BoundBackend, **overrides: Any) -> AsyncIterator[TokenBank]:
    """A bank on ``backend`` with ``overrides``; its invariants must hold when the block ends."""
    async with TokenBank(backend.settings(**overrides)) as bank:
        yield bank
        report = await bank.verify()
        assert report.ok, f"verify(): {report}"


@dataclass(frozen=True)
class Snapshot:
    """Everything a failed operation must leave untouched."""

    balances: dict[str, Decimal]
    held: dict[str, Decimal]
    total_supply: Decimal
    history_ids: dict[str, list[str]]
    audit_ids: list[int]
    top: list[tuple[str, Decimal]]


async def snapshot(bank: TokenBank, accounts: Sequence[str] = ("treasury", "alice", "bob")) -> Snapshot:
    held = {a: await bank.get_held_balance(a) for a in accounts}
    history = {}
    for account in accounts:
        page = await bank.transactions.get_transaction_history(account, limit=1000)
        history[account] = [tx.id for tx in page.items]
    return Snapshot(
        balances=await bank.get_balances(list(accounts)),
        held=held,
        total_supply=await bank.get_total_supply(),
        history_ids=history,
        audit_ids=[entry.id for entry in await bank.get_audit_log(limit=1000)],
        top=[(h.user_id, h.balance) for h in await bank.get_top_holders(limit=100)],
    )


def assert_error(exc: BaseException, expected: type[TokenBankError]) -> None:
    """The exact typed error, with its class's stable code and a message."""
    assert type(exc) is expected, f"expected {expected.__name__}, got {type(exc).__name__}: {exc}"
    assert isinstance(exc, TokenBankError)
    assert exc.code == expected.code
    assert str(exc)


async def history(bank: TokenBank, account: str, **kwargs: Any) -> list[Any]:
    page = await bank.transactions.get_transaction_history(account, limit=1000, **kwargs)
    assert page.next_cursor is None
    return page.items
