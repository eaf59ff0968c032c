"""The two workloads and the clients that run them: tokenbank, and plain asyncpg sending the same SQL.

The asyncpg baseline does what the library's PostgreSQL write path boils down to: one autocommit
``SELECT tb_apply(...)`` per call, then parse the returned JSON and check every status. It does not guess the
library's wire format: :func:`capture_wire_format` records the statement and parameters of one real
``bank.transfer()`` (as they reach asyncpg's ``Connection.fetchval``, which the library's write pool calls), and
the baseline sends that very statement with that op JSON, only the id (a fresh UUIDv7, ``tokenbank.ids.new_id``),
sender and receiver changed.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from _common import Operation
from _pg_env import TREASURY, Ledger, account
from tokenbank import TokenBank, TransferRequest
from tokenbank.ids import new_id


@dataclass(frozen=True, slots=True)
class WireFormat:
    """How the library called tb_apply for one transfer: statement text, DBAPI parameters, and the op JSON."""

    statement: str
    parameters: tuple[Any, ...]
    payload_index: int
    op_template: dict[str, Any]

    def parameters_for(self, ops: list[dict[str, Any]]) -> list[Any]:
        params = list(self.parameters)
        params[self.payload_index] = json.dumps(ops, separators=(",", ":"))
        return params

    def op(self, sender: str, receiver: str) -> dict[str, Any]:
        op = dict(self.op_template)  # same keys in the same order
        op["id"], op["from"], op["to"] = new_id(), sender, receiver
        return op


@contextmanager
def _spy_tb_apply(seen: Callable[[str, tuple[Any, ...]], None]) -> Iterator[None]:
    """Call ``seen(statement, args)`` for every tb_apply statement any asyncpg connection sends meanwhile."""
    original = asyncpg.Connection.fetchval

    async def spy(self: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> Any:
        if "tb_apply" in query:
            seen(query, args)
        return await original(self, query, *args, **kwargs)

    asyncpg.Connection.fetchval = spy
    try:
        yield
    finally:
        asyncpg.Connection.fetchval = original


async def capture_wire_format(ledger: Ledger) -> WireFormat:
    """Send one transfer (treasury -> u1, amount 1) through tokenbank and record what reached the driver."""
    seen: list[tuple[str, tuple[Any, ...]]] = []
    async with open_bank(ledger, pool_size=1) as bank:
        with _spy_tb_apply(lambda statement, args: seen.append((statement, args))):
            await bank.transfer(TREASURY, account(1), 1)
    if len(seen) != 1:
        raise RuntimeError(f"expected one tb_apply call through asyncpg per transfer, saw {len(seen)}")
    statement, parameters = seen[0]
    index = next(i for i, p in enumerate(parameters) if isinstance(p, str) and p.startswith("["))
    [op] = json.loads(parameters[index])
    if (op.get("kind"), op.get("from"), op.get("to"), op.get("amount")) != ("transfer", TREASURY, account(1), "1"):
        raise RuntimeError(f"unexpected op JSON from the library: {op}")
    return WireFormat(statement, parameters, index, op)


@contextmanager
def count_tb_apply_calls() -> Iterator[list[int]]:
    """Count the tb_apply statements the library sends meanwhile (its natural batching puts many transfers in
    one). Yields a one-item list holding the running count."""
    calls = [0]

    def count(_statement: str, _args: tuple[Any, ...]) -> None:
        calls[0] += 1

    with _spy_tb_apply(count):
        yield calls


@dataclass(frozen=True, slots=True)
class Workload:
    """``uniform``: random distinct sender and receiver; ``hot-source``: every transfer leaves the treasury."""

    name: str
    accounts: int
    hot_source: bool

    def pick(self) -> tuple[str, str]:
        receiver = random.randint(1, self.accounts)
        if self.hot_source:
            return TREASURY, account(receiver)
        sender = random.randint(1, self.accounts - 1)
        sender += sender >= receiver  # never the receiver
        return account(sender), account(receiver)


def workloads(accounts: int) -> list[Workload]:
    return [Workload("uniform", accounts, hot_source=False), Workload("hot-source", accounts, hot_source=True)]


# tokenbank --------------------------------------------------------------------------------------------------
@asynccontextmanager
async def open_bank(ledger: Ledger, pool_size: int) -> AsyncIterator[TokenBank]:
    async with TokenBank(ledger.settings(pool_size)) as bank:
        yield bank


def bank_transfer(bank: TokenBank, workload: Workload) -> Operation:
    async def operation() -> None:
        sender, receiver = workload.pick()
        await bank.transfer(sender, receiver, 1)

    return operation


def bank_batch(bank: TokenBank, workload: Workload, size: int) -> Operation:
    async def operation() -> None:
        requests = [TransferRequest(*workload.pick(), amount=1) for _ in range(size)]
        results = await bank.transfer_many(requests)
        failed = next((r for r in results if not r.ok), None)
        if failed is not None:
            raise RuntimeError(f"tokenbank batch item failed: {failed.error!r}")

    return operation


# plain asyncpg ----------------------------------------------------------------------------------------------
async def _no_reset(_conn: asyncpg.Connection) -> None:
    """tb_apply in autocommit leaves no session state, and the library's pool does not reset sessions either;
    asyncpg's default reset would add a round trip (``RESET ALL`` ...) to every release."""


@asynccontextmanager
async def open_asyncpg_pool(ledger: Ledger, size: int) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(
        ledger.dsn,
        min_size=size,
        max_size=size,
        reset=_no_reset,
        server_settings={"application_name": "tokenbank-bench-asyncpg", **ledger.server_settings},
    )
    try:
        yield pool
    finally:
        await pool.close()


async def _apply(pool: asyncpg.Pool, wire: WireFormat, ops: list[dict[str, Any]]) -> None:
    params = wire.parameters_for(ops)
    async with pool.acquire() as conn:
        raw = await conn.fetchval(wire.statement, *params)
    bad = next((item for item in json.loads(raw) if item["s"] != 0), None)
    if bad is not None:
        raise RuntimeError(f"tb_apply refused an op: status {bad['s']}")


def asyncpg_transfer(pool: asyncpg.Pool, wire: WireFormat, workload: Workload) -> Operation:
    async def operation() -> None:
        await _apply(pool, wire, [wire.op(*workload.pick())])

    return operation


def asyncpg_batch(pool: asyncpg.Pool, wire: WireFormat, workload: Workload, size: int) -> Operation:
    async def operation() -> None:
        await _apply(pool, wire, [wire.op(*workload.pick()) for _ in range(size)])

    return operation
