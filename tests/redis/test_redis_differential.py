"""The same random scenario on the SQLite store and the Redis store must give the same observable results:
statuses and errors, transactions (seq included), balances, held funds, leaderboard, ranks and history.

An error is compared by its class AND the store status behind it: some classes stand for two statuses (a hold
no longer pending / expired, a transaction not reversible / already reversed, an idempotency conflict / a
duplicate id), so the class alone would let a store answer the wrong one of a pair."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from tests.redis.conftest import BankFactory
from tokenbank import Settings, TokenBank, TokenBankError, TransferRequest

pytestmark = pytest.mark.redis

USERS = ["treasury", "alice", "bob", "carol", "d:{x}*", "émile"]


def _tx(tx: Any, ids: dict[str, str]) -> tuple[Any, ...]:
    """A transaction without what legitimately differs (random ids, clocks); references become op indexes."""
    return (
        tx.seq, tx.type.value, tx.from_user_id, tx.to_user_id, tx.amount, tx.metadata, tx.idempotency_key,
        tx.reason, ids.get(tx.hold_id or "", tx.hold_id), ids.get(tx.reverses_id or "", tx.reverses_id),
    )  # fmt: skip


def _error(exc: BaseException | None) -> tuple[str, str | None]:
    assert isinstance(exc, TokenBankError)
    return type(exc).__name__, exc.status.name if exc.status is not None else None


class Driver:
    def __init__(self, bank: TokenBank) -> None:
        self.bank = bank
        self.ids: dict[str, str] = {}  # store id -> stable name ("tx3", "hold5")
        self.by_name: dict[str, str] = {}

    def _name(self, real: str, name: str) -> None:
        self.ids.setdefault(real, name)
        self.by_name.setdefault(name, real)

    async def run(self, step: int, action: tuple[Any, ...]) -> Any:
        kind, *args = action
        try:
            if kind == "transfer":
                tx = await self.bank.transfer(*args[:3], idempotency_key=args[3], metadata=args[4])
            elif kind == "mint":
                tx = await self.bank.mint(args[0], args[1], reason="m")
            elif kind == "burn":
                tx = await self.bank.burn(args[0], args[1], reason="b")
            elif kind == "hold":
                hold = await self.bank.hold(*args, expires_in=600)
                self._name(hold.id, f"hold{step}")
                return ("hold", hold.amount, hold.status.value)
            elif kind in ("capture", "void"):
                hold_id = self.by_name.get(args[0], "missing-hold")
                if kind == "capture":
                    hold = await self.bank.capture(hold_id, args[1])
                else:
                    hold = await self.bank.void(hold_id)
                return (kind, hold.amount, hold.captured_amount, hold.status.value)
            elif kind == "reverse":
                tx = await self.bank.reverse(self.by_name.get(args[0], "0190f0f0-0000-7000-8000-00000000dead"),
                                             reason="r")  # fmt: skip
            elif kind == "batch":
                requests = [TransferRequest(*item) for item in args[1]]
                results = await self.bank.transfer_many(requests, atomic=args[0])
                out = []
                for i, r in enumerate(results):
                    if r.transaction is not None:
                        self._name(r.transaction.id, f"tx{step}.{i}")
                        out.append(_tx(r.transaction, self.ids))
                    else:
                        out.append(_error(r.error))
                return ("batch", out)
            else:
                raise AssertionError(kind)
        except TokenBankError as exc:
            return ("error", *_error(exc))
        self._name(tx.id, f"tx{step}")
        return _tx(tx, self.ids)

    async def state(self) -> dict[str, Any]:
        bank = self.bank
        return {
            "balances": await bank.get_balances(USERS),
            "held": [await bank.get_held_balance(u) for u in USERS],
            "supply": (await bank.get_total_supply(), await bank.get_circulating_supply()),
            "top": [(h.user_id, h.balance, h.rank) for h in await bank.get_top_holders(limit=10)],
            "top_page": [(h.user_id, h.rank) for h in await bank.get_top_holders(limit=2, offset=1)],
            "ranks": [await bank.get_rank(u) for u in USERS],
            "history": {
                u: [_tx(t, self.ids) for t in (await bank.transactions.get_transaction_history(u, limit=1000)).items]
                for u in USERS
            },
            "audit": [(e.action, e.details.get("amount")) for e in await bank.get_audit_log(limit=1000)],
        }


def _actions(rng: random.Random, steps: int) -> list[tuple[Any, ...]]:
    actions: list[tuple[Any, ...]] = []
    holds, transfers = ["hold-none"], ["tx-none"]  # steps that may have made a hold / a transfer
    for step in range(steps):
        a, b = rng.sample(USERS, 2)
        amount = str(Decimal(rng.choice([1, 5, 50, 250, 999, 1500])) / rng.choice([1, 100]))
        roll = rng.random()
        if roll < 0.3:
            key = rng.choice([None, None, "k1", "k2"])
            meta = rng.choice([None, {"n": step % 3}])
            actions.append(("transfer", a, b, amount, key, meta))
            transfers.append(f"tx{step}")
        elif roll < 0.4:
            actions.append(("mint", b, amount))
        elif roll < 0.45:
            actions.append(("burn", a, amount))
        elif roll < 0.6:
            actions.append(("hold", a, b, amount))
            holds.append(f"hold{step}")
        elif roll < 0.7:
            actions.append(("capture", rng.choice(holds), rng.choice([None, "0.5", "1", "10", "5000"])))
        elif roll < 0.76:
            actions.append(("void", rng.choice(holds)))
        elif roll < 0.88:
            actions.append(("reverse", rng.choice(transfers)))
        else:
            items = [(*rng.sample(USERS, 2), rng.choice(["1", "20", "400"])) for _ in range(rng.randint(1, 4))]
            actions.append(("batch", rng.random() < 0.5, items))
            transfers.extend(f"tx{step}.{i}" for i in range(len(items)))
    return actions


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_redis_matches_sqlite(make_bank: BankFactory, seed: int) -> None:
    redis_bank = await make_bank(leaderboard_exclude="treasury,carol")
    sql = TokenBank(
        Settings(
            database_url="sqlite+aiosqlite:///:memory:",
            symbol="TARO",
            decimals=2,
            initial_supply="1000",
            hold_sweep_interval=0,
            leaderboard_exclude="treasury,carol",
        )
    )
    await sql.open()
    try:
        left, right = Driver(sql), Driver(redis_bank)
        for step, action in enumerate(_actions(random.Random(seed), 120)):
            expected = await left.run(step, action)
            assert await right.run(step, action) == expected, (step, action)
        assert await right.state() == await left.state()
        assert (await redis_bank.verify()).ok
    finally:
        await sql.close()
