"""PostgreSQL's two ways through ``tb_apply`` agree: the set-based path for plain transfers and the op-by-op one.

Each batch runs twice in one transaction on the store's own connection: once as it is (plain transfers take
``tb_apply_transfers``), then, after rolling back to a savepoint, with one more op first that resends an existing
transaction (a replay, which sends the whole call op by op through ``tb_apply_one`` and changes nothing). Every
outcome, journal field and final balance must be the same; seq must follow the ops in both.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from tests.backends import BoundBackend, Scope, by_name, params
from tokenbank import TokenBank, TransferRequest
from tokenbank.ids import new_id

_APPLY = sa.text("SELECT tb_apply(:token, CAST(:ops AS jsonb), :atomic)")
_SET_BASED = sa.text("SELECT tb_apply_transfers(:token, CAST(:ops AS jsonb), :atomic)")
_BALANCES = sa.text("SELECT user_id, balance, held FROM tb_accounts WHERE token = :token ORDER BY user_id")
_FIELDS = ("id", "type", "from_user_id", "to_user_id", "amount", "from_balance_after", "to_balance_after",
           "metadata", "idempotency_key", "request_hash", "reason")  # fmt: skip
ACCOUNTS = ("treasury", "alice", "bob", "carol", "dave")


@pytest.fixture(params=params(by_name("postgres")))
def pg_backend(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    return request.param.bind(Scope(tmp_path))  # type: ignore[no-any-return]


@pytest.fixture
async def bank(pg_backend: BoundBackend) -> AsyncIterator[TokenBank]:
    async with TokenBank(pg_backend.settings(initial_supply=100, decimals=0)) as bank:
        for name in ACCOUNTS[1:3]:
            await bank.transfer("treasury", name, 20)
        yield bank
        assert (await bank.verify()).ok


def _run(
    conn: Connection, token: str, ops: list[dict[str, Any]], atomic: bool, query: sa.TextClause = _APPLY
) -> tuple[list[Any], list[Any]]:
    raw = conn.scalar(query, {"token": token, "ops": json.dumps(ops), "atomic": atomic})
    assert raw is not None
    results = json.loads(raw) if isinstance(raw, str) else raw
    balances = [tuple(row) for row in conn.execute(_BALANCES, {"token": token})]
    return results, balances


def _comparable(results: list[Any]) -> list[Any]:
    out = []
    for item in results:
        rows = [{f: tx[f] for f in _FIELDS} for tx in item.get("t") or ()]
        out.append((item["s"], rows, item.get("h")))
    return out


def _seqs(results: list[Any]) -> list[int]:
    return [tx["seq"] for item in results for tx in item.get("t") or ()]


async def both_paths(
    bank: TokenBank, ops: list[dict[str, Any]], atomic: bool, *, set_based: bool = True
) -> tuple[Any, Any]:
    """(results, balances) of ``ops`` on the set-based path (called directly unless not ``set_based``: then through
    tb_apply, which decides) and on the op-by-op path."""
    run_sync: Callable[..., Any] = bank.storage.run_sync  # type: ignore[attr-defined]
    token = bank.settings.symbol

    def work(conn: Connection) -> tuple[Any, Any]:
        resend = conn.execute(
            sa.text("SELECT id FROM tb_transactions WHERE token = :token AND type = 'transfer' LIMIT 1"),
            {"token": token},
        ).scalar_one()
        conn.exec_driver_sql("SAVEPOINT fast")
        fast = _run(conn, token, ops, atomic, _SET_BASED if set_based else _APPLY)
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT fast")
        replay = {"kind": "transfer", "id": resend, "from": "treasury", "to": "alice", "amount": "20"}
        slow_results, slow_balances = _run(conn, token, [replay, *ops], atomic)
        assert slow_results[0]["s"] in (1, 14)  # replayed (or rolled back with an atomic call's failure)
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT fast")
        return fast, (slow_results[1:], slow_balances)

    return await run_sync(work, write=True)  # type: ignore[no-any-return]


async def test_the_set_based_path_declines_replays_and_keys_used_twice(bank: TokenBank) -> None:
    run_sync: Callable[..., Any] = bank.storage.run_sync  # type: ignore[attr-defined]
    token = bank.settings.symbol
    op = {"kind": "transfer", "id": new_id(), "from": "alice", "to": "bob", "amount": "1", "key": "k2", "hash": "a"}

    def work(conn: Connection) -> list[Any]:
        def call(ops: list[dict[str, Any]]) -> Any:
            return conn.scalar(_SET_BASED, {"token": token, "ops": json.dumps(ops), "atomic": False})

        outcomes = [call([op, {**op, "id": new_id()}]), call([op, {**op, "key": "k3"}])]
        outcomes.append(call([op]))  # applied
        outcomes += [call([{**op, "id": new_id()}]), call([op | {"key": "k4"}])]  # key, then id, in the journal
        return outcomes

    outcomes = await run_sync(work, write=True)
    assert [o is None for o in outcomes] == [True, True, False, True, True]


def _random_ops(rng: random.Random, count: int) -> list[dict[str, Any]]:
    ops = []
    for _ in range(count):
        sender = rng.choice(ACCOUNTS)
        receiver = rng.choice([a for a in (*ACCOUNTS, f"new-{rng.randrange(3)}") if a != sender])
        op: dict[str, Any] = {"kind": "transfer", "id": new_id(), "from": sender, "to": receiver,
                              "amount": str(rng.choice((1, 5, 15, 40)))}  # fmt: skip
        if rng.random() < 0.3:
            op["key"], op["hash"] = new_id(), "h" * 64
        if rng.random() < 0.3:
            op["meta"], op["reason"] = json.dumps({"n": rng.randrange(100)}), "why"
        ops.append(op)
    return ops


@pytest.mark.parametrize("atomic", [False, True])
@pytest.mark.parametrize("seed", range(6))
async def test_set_based_transfers_match_op_by_op(bank: TokenBank, seed: int, atomic: bool) -> None:
    ops = _random_ops(random.Random(seed), count=1 + seed * 7)
    (fast, fast_balances), (slow, slow_balances) = await both_paths(bank, ops, atomic)
    assert _comparable(fast) == _comparable(slow)
    assert fast_balances == slow_balances
    assert _seqs(fast) == sorted(_seqs(fast))
    assert _seqs(slow) == sorted(_seqs(slow))


async def test_a_key_used_twice_in_one_call_replays_the_first(bank: TokenBank) -> None:
    first = {"kind": "transfer", "id": new_id(), "from": "alice", "to": "bob", "amount": "3", "key": "k", "hash": "a"}
    ops = [first, {**first, "id": new_id()}, {**first, "id": new_id(), "hash": "b"}]
    (fast, _), (slow, _) = await both_paths(bank, ops, atomic=False, set_based=False)
    assert [item["s"] for item in fast] == [0, 1, 4]
    assert fast[1]["t"][0]["id"] == first["id"]
    assert _comparable(fast) == _comparable(slow)


async def test_concurrent_set_based_batches_with_new_accounts_never_deadlock(pg_backend: BoundBackend) -> None:
    """Four banks (four stores) send batches at once, in both directions between the same accounts, creating
    accounts as they go: nothing may wait out of order, so no call needs a retry."""
    settings = pg_backend.settings(initial_supply=10_000, decimals=0)
    async with AsyncExitStack() as stack:
        banks = [await stack.enter_async_context(TokenBank(settings)) for _ in range(4)]
        olds = [f"old-{i}" for i in range(6)]
        await banks[0].transfer_many([TransferRequest("treasury", name, 1_000) for name in olds])

        async def worker(bank: TokenBank, seed: int) -> None:
            rng = random.Random(seed)
            for round_ in range(8):
                names = [*olds, f"new-{seed}-{round_}", f"new-{(seed + 1) % 4}-{round_}"]
                requests = []
                for _ in range(30):
                    sender, receiver = rng.sample(names, 2)
                    requests.append(TransferRequest(sender, receiver, rng.randint(1, 50)))
                await bank.transfer_many(requests)

        await asyncio.gather(*(worker(bank, seed) for seed, bank in enumerate(banks)))
        assert [bank.storage.stats.retries for bank in banks] == [0, 0, 0, 0]
        assert (await banks[0].verify()).ok
