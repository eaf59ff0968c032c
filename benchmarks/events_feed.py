"""The durable events path, each figure beside a raw baseline measured in the same run, with the ratio:

    .venv/bin/python benchmarks/events_feed.py [--quick] [--json out.json] [--only sqlite,postgres,redis]

1. Feed read rate: transactions/s through ``bank.events.read(after_seq, 1000)``, paging from seq 0 to the end of
   a journal of N transactions (50,000; 3,000 with --quick) written first with ``transfer_many``. Baseline: the
   same pages read from the same table or stream with the plain driver: ``sqlite3`` and ``asyncpg`` running
   ``SELECT * FROM tb_transactions WHERE token = ? AND seq > ? ORDER BY seq LIMIT 1000``, redis-py
   ``XRANGE <ledger stream> (<last id> + COUNT 1000`` with each entry's JSON decoded. Ours also turns each row
   into a ``Transaction`` (Decimal amount, datetime) and, on PostgreSQL, checks per page that no writer still
   holds a lower seq. Each side runs 3 times, alternating; the median counts.
2. Webhook delivery rate: deliveries/s of the worker's dispatcher (``bank.webhooks.dispatcher()``: per delivery,
   read the endpoint's queue head, sign, POST, store the outcome and the attempt) to a receiver in its own process
   that answers 200 at once (``_http_sink.py``), M deliveries (2,000; 200 with --quick). Baseline: plain httpx
   POSTs of the same bodies to the same receiver from one loop, one at a time, before and after ours (the faster
   of the two counts). Also reported: the event pass (reading the feed and queueing the deliveries), events/s.

Uses the test services (PostgreSQL 127.0.0.1:5432 database ``test``, Redis 127.0.0.1:6379) under a unique schema
and key prefix, removed at the end, and a temporary directory for SQLite. Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx
import redis.asyncio as aioredis

from _common import busy_warning, environment, format_table, write_json
from tokenbank import Settings, TokenBank, TransferRequest
from tokenbank.services.delivery import EVENTS_CURSOR

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
HERE = Path(__file__).resolve().parent
SYMBOL = "BENCH"
PAGE = 1000
BACKENDS = ("sqlite", "postgres", "redis")


@dataclass(frozen=True, slots=True)
class Plan:
    journal: int
    """Transfers written before the feed is read (the journal also holds the initial mint)."""
    deliveries: int
    rounds: int


FULL = Plan(journal=50_000, deliveries=2_000, rounds=3)
QUICK = Plan(journal=3_000, deliveries=200, rounds=3)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# stores -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Store:
    kind: str
    settings: Settings
    sqlite_path: Path | None = None
    schema: str | None = None


@contextlib.asynccontextmanager
async def open_store(kind: str, folder: Path, pg_url: str, redis_url: str) -> AsyncIterator[Store]:
    """A fresh token on ``kind``; its schema or keys are removed on exit, also on error."""
    tag = secrets.token_hex(3)
    common: dict[str, Any] = {"symbol": SYMBOL, "initial_supply": 10**12, "decimals": 0, "hold_sweep_interval": 0}
    if kind == "sqlite":
        path = folder / f"feed-{tag}.db"
        yield Store(kind, Settings(database_url=f"sqlite+aiosqlite:///{path}", **common), sqlite_path=path)
        return
    if kind == "postgres":
        schema = f"tb_evbench_{tag}"
        try:
            yield Store(kind, Settings(database_url=pg_url, database_schema=schema, **common), schema=schema)
        finally:
            conn = await asyncpg.connect(pg_url.replace("+asyncpg", ""))
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()
        return
    prefix = f"tbevb{tag}"
    try:
        yield Store(kind, Settings(storage_mode="redis", redis_url=redis_url, key_prefix=prefix, **common))
    finally:
        client = aioredis.Redis.from_url(redis_url)
        names = [name async for name in client.scan_iter(match="{" + prefix + ":*", count=1000)]
        for start in range(0, len(names), 1000):
            await client.unlink(*names[start : start + 1000])
        await client.aclose()
        progress(f"deleted {len(names):,} keys under prefix {prefix}")


async def write_transfers(bank: TokenBank, count: int) -> None:
    for start in range(0, count, 1000):
        await bank.transfer_many(
            [TransferRequest("treasury", f"u{n % 1000}", 1 + n % 5) for n in range(start, min(count, start + 1000))]
        )


# 1. the feed ------------------------------------------------------------------------------------------------
async def read_ours(bank: TokenBank) -> int:
    after = count = 0
    while page := await bank.events.read(after_seq=after, limit=PAGE):
        count += len(page)
        after = page[-1].seq
    return count


def read_sqlite(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        query = "SELECT * FROM tb_transactions WHERE token = ? AND seq > ? ORDER BY seq LIMIT ?"
        cursor = conn.execute(query, (SYMBOL, 0, PAGE))
        seq_at = [column[0] for column in cursor.description].index("seq")
        after = count = 0
        while rows := cursor.fetchall():
            count += len(rows)
            after = rows[-1][seq_at]
            cursor = conn.execute(query, (SYMBOL, after, PAGE))
        return count
    finally:
        conn.close()


async def read_asyncpg(conn: asyncpg.Connection) -> int:
    query = "SELECT * FROM tb_transactions WHERE token = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    after = count = 0
    while rows := await conn.fetch(query, SYMBOL, after, PAGE):
        count += len(rows)
        after = rows[-1]["seq"]
    return count


async def read_xrange(client: aioredis.Redis, stream: str) -> int:
    start, count = "-", 0
    while entries := cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(stream, start, count=PAGE)):
        for _, fields in entries:
            json.loads(fields[b"tx"])
            count += 1
        start = "(" + entries[-1][0].decode()
    return count


async def timed(run: Callable[[], Awaitable[int]]) -> tuple[int, float]:
    started = time.perf_counter()
    count = await run()
    return count, time.perf_counter() - started


async def feed_figures(store: Store, bank: TokenBank, plan: Plan) -> dict[str, Any]:
    expected = plan.journal + 1
    baseline_name, baseline, close = await _baseline_reader(store, bank)
    ours: list[float] = []
    plain: list[float] = []
    try:
        for _ in range(plan.rounds):
            for rates, run in ((ours, lambda: read_ours(bank)), (plain, baseline)):
                count, seconds = await timed(run)
                assert count == expected, f"read {count} transactions of {expected}"
                rates.append(count / seconds)
    finally:
        await close()
    ours_rate, plain_rate = statistics.median(ours), statistics.median(plain)
    return {
        "transactions": expected, "page": PAGE, "ours_tx_per_s": ours_rate, "baseline": baseline_name,
        "baseline_tx_per_s": plain_rate, "ratio": ours_rate / plain_rate, "ours_runs": ours, "baseline_runs": plain,
    }  # fmt: skip


async def _baseline_reader(
    store: Store, bank: TokenBank
) -> tuple[str, Callable[[], Awaitable[int]], Callable[[], Awaitable[None]]]:
    """The plain driver's reader of the same rows, and how to close its connection."""
    if store.kind == "sqlite":
        path = store.sqlite_path
        assert path is not None
        return "sqlite3 SELECT paging", lambda: asyncio.to_thread(read_sqlite, path), _nothing
    if store.kind == "postgres":
        dsn = store.settings.database_url.replace("+asyncpg", "")
        conn = await asyncpg.connect(dsn, server_settings={"search_path": store.schema or "public"})
        return "asyncpg SELECT paging", lambda: read_asyncpg(conn), conn.close
    client = aioredis.Redis.from_url(store.settings.redis_url)
    stream: str = bank.storage.keys.stream  # type: ignore[attr-defined]
    return "redis-py XRANGE paging", lambda: read_xrange(client, stream), client.aclose


async def _nothing() -> None:
    return None


# 2. webhook delivery ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def http_sink() -> Any:
    """The 200-at-once receiver in its own process; its URL."""
    process = subprocess.Popen([sys.executable, str(HERE / "_http_sink.py")], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}/hooks"
    finally:
        process.kill()
        process.wait()


async def plain_posts(url: str, bodies: list[bytes]) -> float:
    """Plain httpx: the same bodies POSTed one at a time from one loop; posts/s."""
    async with httpx.AsyncClient() as client:
        (await client.post(url, content=b"{}")).raise_for_status()  # open the connection, untimed
        started = time.perf_counter()
        for content in bodies:
            response = await client.post(url, content=content, headers={"content-type": "application/json"})
            response.raise_for_status()
        return len(bodies) / (time.perf_counter() - started)


async def delivery_figures(bank: TokenBank, url: str, plan: Plan) -> dict[str, Any]:
    """On a journal already read: the event pass starts after its end, so it sees only the new transfers."""
    state = bank.events.state
    last = (await bank.events.read(after_seq=0, limit=1))[0].seq
    while page := await bank.events.read(after_seq=last, limit=10_000):
        last = page[-1].seq
    await state.set_cursor(EVENTS_CURSOR, last)
    endpoint = await bank.webhooks.add(url)
    await write_transfers(bank, plan.deliveries)
    async with bank.webhooks.dispatcher() as dispatcher:
        started = time.perf_counter()
        queued = 0
        while True:
            read, added = await dispatcher.pump()
            queued += added
            if not read:
                break
        pass_s = time.perf_counter() - started
        records = await state.list_deliveries(endpoint.id, failed=False, limit=plan.deliveries)
        bodies = [record.payload.encode() for record in reversed(records)]
        before = await plain_posts(url, bodies)
        started = time.perf_counter()
        delivered, failed, dead = await dispatcher.send_due(per_endpoint=plan.deliveries)
        send_s = time.perf_counter() - started
        after = await plain_posts(url, bodies)
    assert queued == delivered == plan.deliveries and failed == dead == 0, (queued, delivered, failed, dead)
    assert all(d.status == "delivered" for d in await bank.webhooks.deliveries(endpoint.id, limit=plan.deliveries))
    ours, plain = delivered / send_s, max(before, after)
    return {
        "deliveries": delivered, "ours_per_s": ours, "baseline": "plain httpx POSTs, one loop",
        "baseline_per_s": plain, "baseline_runs": [before, after], "ratio": ours / plain,
        "event_pass_per_s": queued / pass_s,
    }  # fmt: skip


# the run ----------------------------------------------------------------------------------------------------
async def run(plan: Plan, kinds: list[str], pg_url: str, redis_url: str) -> dict[str, Any]:
    results: dict[str, Any] = {"feed": {}, "delivery": {}}
    with tempfile.TemporaryDirectory(prefix="tb-events-bench-") as folder, http_sink() as url:
        for kind in kinds:
            async with open_store(kind, Path(folder), pg_url, redis_url) as store, TokenBank(store.settings) as bank:
                progress(f"{kind}: writing {plan.journal:,} transfers")
                await write_transfers(bank, plan.journal)
                progress(f"{kind}: reading the feed")
                results["feed"][kind] = await feed_figures(store, bank, plan)
                progress(f"{kind}: delivering {plan.deliveries:,} webhooks")
                results["delivery"][kind] = await delivery_figures(bank, url, plan)
    return results


def report(results: dict[str, Any], plan: Plan) -> None:
    feed = results["feed"]
    print(f"\nfeed read: bank.events.read in pages of {PAGE:,} over a journal of {plan.journal + 1:,} transactions")
    print(format_table(
        ["store", "tokenbank tx/s", "baseline", "baseline tx/s", "ratio"],
        [[k, f["ours_tx_per_s"], f["baseline"], f["baseline_tx_per_s"], f["ratio"]] for k, f in feed.items()],
    ))  # fmt: skip
    delivery = results["delivery"]
    print(f"\nwebhook delivery: {plan.deliveries:,} deliveries to a local receiver answering 200 at once")
    print(format_table(
        ["store", "dispatcher deliveries/s", "plain httpx posts/s", "ratio", "event pass events/s"],
        [[k, d["ours_per_s"], d["baseline_per_s"], d["ratio"], d["event_pass_per_s"]] for k, d in delivery.items()],
    ))  # fmt: skip
    print()
    for kind, f in feed.items():
        print(f"ratio feed read {kind} tokenbank/{f['baseline']}: {f['ratio']:.2f}x")
    for kind, d in delivery.items():
        print(f"ratio webhook delivery {kind} dispatcher/plain httpx: {d['ratio']:.2f}x")


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = set(kinds) - set(BACKENDS)
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(BACKENDS)}")
    return [k for k in BACKENDS if k in kinds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3,000 transactions, 200 deliveries (a smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--only", type=_kinds, default=list(BACKENDS), help="comma-separated subset of stores")
    parser.add_argument("--postgres-url", default=PG_URL)
    parser.add_argument("--redis-url", default=REDIS_URL)
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if warning := busy_warning():
        print(warning)
    info = environment()
    results = asyncio.run(run(plan, args.only, args.postgres_url, args.redis_url))
    report(results, plan)
    if args.json:
        write_json(args.json, {"benchmark": "events_feed", "environment": info, "quick": args.quick,
                               "plan": asdict(plan), **results})  # fmt: skip


if __name__ == "__main__":
    main()
