"""Does a debit cost more when the account holds many credit lots? One run per store, every figure beside the same
run's own baselines:

    .venv/bin/python benchmarks/lot_scaling.py [--quick] [--json out.json] [--store sqlite|postgres|redis ...]

For SQLite (a file), PostgreSQL and Redis: sequential ``bank.transfer()`` calls (one at a time, so each figure is
one debit's own cost, not a batch's share) from accounts holding 0, 10, 100 and 1,000 open lots (each far larger
than what the run spends, so every account keeps all of them; expiries a year or more away, every fifth without
one, so a debit walks them in spend order). The accounts take turns in blocks of 25 transfers, so a machine whose
speed drifts weighs on every count alike. Reported per count: wall µs and CPU µs per transfer (this process, with
SQLite's writer thread, plus the Redis server or PostgreSQL's own processes), and the cost over the 0-lot account's.
Beside them, the raw store doing the same debit and credit one at a time with no ledger at all (plain sqlite3
``BEGIN IMMEDIATE`` + two ``UPDATE``s; asyncpg, one transaction of two ``UPDATE``s; redis-py ``MULTI``/
``HINCRBY``/``HINCRBY``/``EXEC``), and the 0-lot transfer over it. ``--quick``: 0 and 10 lots, few transfers (a
smoke test, not a measurement).

Uses the test services (PostgreSQL 127.0.0.1:5432 database ``test``, Redis 127.0.0.1:6379) under a unique
schema / key prefix, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from _common import busy_warning, format_table, write_json
from account_controls import REDIS_URL, STORES, cleanup, server_cpu, settings_for
from tokenbank import TokenBank

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
COUNTS = (0, 10, 100, 1000)
BLOCK = 25


async def give_lots(bank: TokenBank, user: str, count: int) -> None:
    """``count`` lots of 1,000,000 to ``user``, expiring a year or more from now (every fifth: never)."""
    year = datetime.now(UTC) + timedelta(days=365)
    for first in range(0, count, 100):
        await asyncio.gather(
            *(bank.grant(user, 1_000_000, expires_at=None if index % 5 == 4 else year + timedelta(days=index))
              for index in range(first, min(first + 100, count)))
        )  # fmt: skip


Call = Callable[[], Awaitable[Any]]


async def timed_block(one: Call, count: int, cpu: Callable[[], Awaitable[float]]) -> tuple[float, float]:
    """Wall and CPU seconds of ``count`` sequential calls of ``one``."""
    app, server, started = time.process_time(), await cpu(), time.perf_counter()
    for _ in range(count):
        await one()
    return time.perf_counter() - started, time.process_time() - app + await cpu() - server


async def measure_bank(store: str, counts: tuple[int, ...], blocks: int, tag: str, folder: Path) -> dict[str, Any]:
    client = aioredis.Redis.from_url(REDIS_URL)
    totals = {count: [0.0, 0.0] for count in counts}
    try:
        async with TokenBank(settings_for(store, tag, folder)) as bank:
            for count in counts:
                await bank.transfer("treasury", f"holder{count}", 1000)
                await give_lots(bank, f"holder{count}", count)
            cpu = server_cpu(store, client)
            await timed_block(_transfer_from(bank, "holder0"), BLOCK, cpu)  # warm-up
            for _ in range(blocks):
                for count in counts:
                    wall, used = await timed_block(_transfer_from(bank, f"holder{count}"), BLOCK, cpu)
                    totals[count][0] += wall
                    totals[count][1] += used
            report = await bank.verify()
            assert report.ok, report
    finally:
        await client.aclose()
    done = blocks * BLOCK
    return {str(count): {"wall_us": wall / done * 1e6, "cpu_us": used / done * 1e6}
            for count, (wall, used) in totals.items()}  # fmt: skip


def _transfer_from(bank: TokenBank, sender: str) -> Call:
    async def one() -> None:
        await bank.transfer(sender, "receiver", "0.01")

    return one


async def raw_transfer(store: str, tag: str, folder: Path) -> tuple[Call, Callable[[], Awaitable[None]]]:
    """One debit and credit on the raw store, and how to close it."""
    if store == "postgres":
        conn = await asyncpg.connect(PG_DSN)
        table = f'"{tag}".raw_lot_accounts'
        await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, balance bigint NOT NULL)")
        await conn.execute(f"INSERT INTO {table} VALUES (1, 1000000000), (2, 0)")

        async def pg() -> None:
            async with conn.transaction():
                await conn.execute(f"UPDATE {table} SET balance = balance - 1 WHERE id = 1")
                await conn.execute(f"UPDATE {table} SET balance = balance + 1 WHERE id = 2")

        async def close_pg() -> None:
            await conn.execute(f"DROP TABLE {table}")
            await conn.close()

        return pg, close_pg
    if store == "redis":
        client = aioredis.Redis.from_url(REDIS_URL)
        key = "{" + tag + ":raw}"  # under the pattern cleanup() deletes

        async def rd() -> None:
            async with client.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, "1", -1)  # queued: MULTI/EXEC sends both at execute()
                pipe.hincrby(key, "2", 1)
                await pipe.execute()

        return rd, client.aclose
    db = sqlite3.connect(folder / "raw.db", isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE raw_accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
    db.execute("INSERT INTO raw_accounts VALUES (1, 1000000000), (2, 0)")

    def sqlite_transfer() -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE raw_accounts SET balance = balance - 1 WHERE id = 1")
        db.execute("UPDATE raw_accounts SET balance = balance + 1 WHERE id = 2")
        db.execute("COMMIT")

    async def lite() -> None:  # on a thread, as the bank's writer runs SQLite
        await asyncio.to_thread(sqlite_transfer)

    async def close_lite() -> None:
        db.close()

    return lite, close_lite


async def measure_raw(store: str, blocks: int, tag: str, folder: Path) -> float:
    """Wall µs per raw transfer."""
    one, close = await raw_transfer(store, tag, folder)
    try:
        await timed_block(one, BLOCK, _no_cpu)
        wall = 0.0
        for _ in range(blocks):
            wall += (await timed_block(one, BLOCK, _no_cpu))[0]
    finally:
        await close()
    return wall / (blocks * BLOCK) * 1e6


async def _no_cpu() -> float:
    return 0.0


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="0 and 10 lots, few transfers: a smoke test")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--store", choices=STORES, action="append", help="measure only this store (repeatable)")
    options = parser.parse_args()
    if warning := busy_warning():
        print(warning)
    counts, blocks = ((0, 10), 1) if options.quick else (COUNTS, 12)
    tag = "tblotsc_" + secrets.token_hex(4)
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for store in options.store or STORES:
                figures = await measure_bank(store, counts, blocks, tag, Path(folder))
                results[store] = {"lots": figures, "raw_wall_us": await measure_raw(store, blocks, tag, Path(folder))}
    finally:
        await cleanup(tag)
    rows = []
    for store, result in results.items():
        base = result["lots"]["0"]
        for count, f in result["lots"].items():
            f["cost_ratio"] = f["cpu_us"] / base["cpu_us"]
            f["vs_raw"] = f["wall_us"] / result["raw_wall_us"]
            rows.append([store, count, f"{f['wall_us']:,.0f}", f"{f['cpu_us']:,.0f}", f"{f['cost_ratio']:.2f}x",
                         f"{result['raw_wall_us']:,.0f}", f"{f['vs_raw']:.2f}x"])  # fmt: skip
    print(f"sequential bank.transfer() from one account holding N open lots, {blocks} blocks of {BLOCK} per count")
    headers = ["store", "lots", "wall µs/tx", "CPU µs/tx", "cost vs 0 lots", "raw wall µs/tx", "wall vs raw"]
    print(format_table(headers, rows))
    if options.json:
        write_json(options.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
