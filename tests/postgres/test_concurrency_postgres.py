"""Concurrency: many writers at once never overdraw, never lose a unit, and replay idempotent requests.

PostgreSQL is where real concurrency happens (row locks inside ``tb_apply``); the overdraw race also runs on
a SQLite file, whose writes are serialised.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.backends import BoundBackend, Scope, by_name, params
from tests.support import history, open_bank
from tokenbank import HoldStateError, HoldStatus, InsufficientBalanceError, TokenBankError


@pytest.fixture(params=params(by_name("postgres")))
def pg_backend(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    return request.param.bind(Scope(tmp_path))  # type: ignore[no-any-return]


@pytest.fixture(params=params(by_name("postgres", "sqlite")))
def race_backend(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    return request.param.bind(Scope(tmp_path))  # type: ignore[no-any-return]


async def gather(calls: Sequence[Awaitable[Any]]) -> tuple[list[Any], list[BaseException]]:
    """Run every call concurrently; split outcomes into results and errors."""
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    results = [o for o in outcomes if not isinstance(o, BaseException)]
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    return results, errors


def only(errors: list[BaseException], *allowed: type[TokenBankError]) -> None:
    unexpected = [e for e in errors if type(e) not in allowed]
    assert not unexpected, f"unexpected errors: {Counter(repr(e) for e in unexpected).most_common(3)}"


async def test_1000_concurrent_transfers_out_of_500(race_backend: BoundBackend) -> None:
    async with open_bank(race_backend, decimals=0) as bank:
        await bank.mint("payer", 500)
        calls = [bank.transfer("payer", f"payee-{i % 10}", 1) for i in range(1000)]
        results, errors = await gather(calls)
        assert len(results) == 500
        assert len(errors) == 500
        only(errors, InsufficientBalanceError)
        assert await bank.get_balance("payer") == 0
        payees = await bank.get_balances([f"payee-{i}" for i in range(10)])
        assert sum(payees.values()) == 500
        assert len({tx.id for tx in results}) == 500
        assert len(await history(bank, "payer")) == 501
        assert (await bank.verify()).ok


async def test_random_transfers_among_ten_accounts_conserve_supply(pg_backend: BoundBackend) -> None:
    accounts = [f"acct-{i}" for i in range(10)]
    rng = random.Random(20240601)
    async with open_bank(pg_backend, decimals=2) as bank:
        for account in accounts:
            await bank.mint(account, 100)
        calls = []
        for _ in range(200):
            sender, receiver = rng.sample(accounts, 2)
            calls.append(bank.transfer(sender, receiver, Decimal(rng.randint(1, 6000)).scaleb(-2)))
        results, errors = await gather(calls)
        only(errors, InsufficientBalanceError)
        assert results
        balances = await bank.get_balances(accounts)
        assert all(v >= 0 for v in balances.values())
        assert sum(balances.values()) == 1000 == await bank.get_total_supply()
        report = await bank.verify()
        assert report.ok, report


async def test_same_idempotency_key_from_50_tasks_applies_once(pg_backend: BoundBackend) -> None:
    async with open_bank(pg_backend, initial_supply=1000) as bank:
        calls = [
            bank.transfer("treasury", "alice", "12.5", idempotency_key="checkout-1", metadata={"cart": 1})
            for _ in range(50)
        ]
        results, errors = await gather(calls)
        assert errors == []
        assert len({tx.id for tx in results}) == 1
        assert all(tx == results[0] for tx in results)
        assert await bank.get_balance("alice") == Decimal("12.5")
        assert len(await history(bank, "alice")) == 1


async def test_concurrent_captures_of_one_hold(pg_backend: BoundBackend) -> None:
    async with open_bank(pg_backend, initial_supply=100) as bank:
        hold = await bank.hold("treasury", "shop", 30, expires_in=60)
        results, errors = await gather([bank.capture(hold.id, 10) for _ in range(25)])
        assert len(results) == 1
        only(errors, HoldStateError)
        assert len(errors) == 24
        assert await bank.get_balances(["treasury", "shop"]) == {"treasury": 90, "shop": 10}
        assert await bank.get_held_balance("treasury") == 0


async def test_concurrent_captures_and_voids_settle_a_hold_once(pg_backend: BoundBackend) -> None:
    async with open_bank(pg_backend, initial_supply=100) as bank:
        holds = [await bank.hold("treasury", f"shop-{i}", 10, expires_in=60) for i in range(5)]
        calls = [bank.capture(h.id) if (i + j) % 2 else bank.void(h.id) for j in range(10) for i, h in enumerate(holds)]
        results, errors = await gather(calls)
        only(errors, HoldStateError)
        assert len(results) == len(holds)
        settled = {r.id: r for r in results}
        assert set(settled) == {h.id for h in holds}
        captured = sum(10 for r in results if r.status is HoldStatus.CAPTURED)
        assert await bank.get_balance("treasury") == 100 - captured
        assert await bank.get_held_balance("treasury") == 0
        shops = await bank.get_balances([f"shop-{i}" for i in range(5)])
        assert sum(shops.values()) == captured


async def test_concurrent_holds_never_overdraw(pg_backend: BoundBackend) -> None:
    async with open_bank(pg_backend, decimals=0) as bank:
        await bank.mint("payer", 500)
        calls: list[Awaitable[Any]] = [bank.hold("payer", f"shop-{i % 7}", 10, expires_in=60) for i in range(100)]
        calls += [bank.transfer("payer", "other", 10) for _ in range(20)]
        results, errors = await gather(calls)
        only(errors, InsufficientBalanceError)
        assert len(results) == 50
        held = await bank.get_held_balance("payer")
        moved = await bank.get_balance("other")
        assert held + moved == 500
        assert await bank.get_balance("payer") == 0
        # Capture every hold concurrently: all succeed, the held amount lands exactly once.
        holds = [r for r in results if hasattr(r, "status")]
        captured, errors = await gather([bank.capture(h.id) for h in holds])
        assert errors == [] and len(captured) == len(holds)
        shops = await bank.get_balances([f"shop-{i}" for i in range(7)])
        assert sum(shops.values()) == held
        assert await bank.get_held_balance("payer") == 0
