"""Does one hot account slow a token down when several processes write it? Uniform vs hot-source, same run:

    .venv/bin/python benchmarks/hot_source.py [--quick] [--json out.json] [--store sqlite|postgres|redis ...]

Four OS processes with 32 tasks each run ``bank.transfer()`` on one token for a fixed time, started together:
"uniform" (random pairs of 200 funded accounts) and "hot-source" (every transfer leaves the treasury for one of
the 200, as a game paying rewards does). Beside them, in the same run, the same processes and tasks doing the same
debit and credit on the raw store, with no ledger at all: PostgreSQL, plain asyncpg running one transaction of two
``UPDATE``s on a plain table (a pool of 10 connections per process, as the bank's), so every hot-source transaction
waits for the treasury row's lock; Redis, plain redis-py running ``MULTI``/``HINCRBY``/``HINCRBY``/``EXEC``; SQLite
(a file), plain sqlite3 running ``BEGIN IMMEDIATE`` and two ``UPDATE``s.

It prints transfers per second of each, the hot-source/uniform ratio of each, and tokenbank/raw. Splitting a hot
account into shards helps only where the hot ratio drops: a store that applies writes one at a time (SQLite's one
writer, Redis's one thread) has no row to wait for, and on PostgreSQL tokenbank locks the treasury row once per
batch of transfers, not once per transfer. ``--quick``: short runs (a smoke test, not a measurement).

Uses the test services (PostgreSQL 127.0.0.1:5432 database ``test``, Redis 127.0.0.1:6379) under a unique
schema / key prefix, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from _common import busy_warning, delete_keys, drop_schema, format_table, run_closed_loop, write_json
from tokenbank import Settings, TokenBank, TransferRequest

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
PROCESSES, TASKS, ACCOUNTS = 4, 32, 200
STORES = ("sqlite", "postgres", "redis")
WORKLOADS = ("uniform", "hot-source")
HOT = 0
"""The raw tables' treasury row: accounts 1..ACCOUNTS are the others."""


def bank_settings(store: str, tag: str, folder: str) -> Settings:
    common: dict[str, Any] = {"symbol": "HOT", "initial_supply": 100_000_000, "hold_sweep_interval": 0}
    if store == "sqlite":
        return Settings(database_url=f"sqlite+aiosqlite:///{folder}/bank.db", **common)
    if store == "postgres":
        return Settings(
            database_url=PG_DSN.replace("postgresql:", "postgresql+asyncpg:"), database_schema=tag, **common
        )
    return Settings(storage_mode="redis", redis_url=REDIS_URL, key_prefix=tag, **common)


def pair(workload: str, rng: random.Random) -> tuple[int, int]:
    """(from, to) account numbers of one transfer: 0 is the treasury."""
    if workload == "hot-source":
        return HOT, rng.randint(1, ACCOUNTS)
    first, second = rng.sample(range(1, ACCOUNTS + 1), 2)
    return first, second


async def bank_transfers(store: str, tag: str, folder: str) -> tuple[Callable[[str, random.Random], Any], Any]:
    bank = TokenBank(bank_settings(store, tag, folder))
    await bank.open()

    async def one(workload: str, rng: random.Random) -> None:
        sender, receiver = pair(workload, rng)
        await bank.transfer("treasury" if sender == HOT else f"u{sender}", f"u{receiver}", "0.01")

    return one, bank.close


async def raw_transfers(store: str, tag: str, folder: str) -> tuple[Callable[[str, random.Random], Any], Any]:
    if store == "postgres":
        pool = await asyncpg.create_pool(PG_DSN, min_size=10, max_size=10)
        table = f'"{tag}".raw_accounts'

        async def pg(workload: str, rng: random.Random) -> None:
            low, high = sorted(pair(workload, rng))  # locks in id order: no deadlocks between transfers
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(f"UPDATE {table} SET balance = balance - 1 WHERE id = $1", low)
                await conn.execute(f"UPDATE {table} SET balance = balance + 1 WHERE id = $1", high)

        return pg, pool.close
    if store == "redis":
        client = aioredis.Redis.from_url(REDIS_URL)
        key = "{" + tag + "}:raw"

        async def rd(workload: str, rng: random.Random) -> None:
            sender, receiver = pair(workload, rng)
            async with client.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, str(sender), -1)  # queued: MULTI/EXEC sends both at execute()
                pipe.hincrby(key, str(receiver), 1)
                await pipe.execute()

        return rd, client.aclose
    db = sqlite3.connect(f"{folder}/raw.db", timeout=60, isolation_level=None, check_same_thread=False)

    def sqlite_transfer(sender: int, receiver: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE raw_accounts SET balance = balance - 1 WHERE id = ?", (sender,))
        db.execute("UPDATE raw_accounts SET balance = balance + 1 WHERE id = ?", (receiver,))
        db.execute("COMMIT")

    lock = asyncio.Lock()  # one sqlite3 connection per process, used by one task at a time (as a writer thread)

    async def lite(workload: str, rng: random.Random) -> None:
        async with lock:
            await asyncio.to_thread(sqlite_transfer, *pair(workload, rng))

    async def close() -> None:
        db.close()

    return lite, close


async def process_run(store: str, kind: str, workload: str, tag: str, folder: str, start_at: float, seconds: float,
                      seed: int) -> float:  # fmt: skip
    """One process's transfers per second in the window that starts at ``start_at`` (wall clock)."""
    make = bank_transfers if kind == "tokenbank" else raw_transfers
    one, close = await make(store, tag, folder)
    rng = random.Random(seed)
    try:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        load = await run_closed_loop(lambda: one(workload, rng), TASKS, seconds=seconds, warmup_seconds=seconds / 4)
    finally:
        await close()
    return load.tps


def process_main(args: tuple[Any, ...]) -> float:
    return asyncio.run(process_run(*args))


async def prepare(store: str, tag: str, folder: str) -> None:
    """The bank's token with 200 funded accounts, and the raw table or hash with the same accounts."""
    async with TokenBank(bank_settings(store, tag, folder)) as bank:
        users = [f"u{i}" for i in range(1, ACCOUNTS + 1)]
        await bank.transfer_many([TransferRequest("treasury", user, 10_000) for user in users])
    if store == "postgres":
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(f'CREATE TABLE "{tag}".raw_accounts (id int PRIMARY KEY, balance bigint NOT NULL)')
            await conn.execute(
                f'INSERT INTO "{tag}".raw_accounts SELECT i, 1000000000 FROM generate_series(0, {ACCOUNTS}) i'
            )
        finally:
            await conn.close()
    elif store == "sqlite":
        with sqlite3.connect(f"{folder}/raw.db") as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE raw_accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
            db.executemany("INSERT INTO raw_accounts VALUES (?, 1000000000)", [(i,) for i in range(ACCOUNTS + 1)])


async def verify(store: str, tag: str, folder: str) -> None:
    async with TokenBank(bank_settings(store, tag, folder)) as bank:
        report = await bank.verify()
        assert report.ok, report


def measure(store: str, tag: str, folder: str, seconds: float, pool: Any) -> dict[str, float]:
    """Transfers per second of every (kind, workload), all processes together, uniform and hot-source alternating."""
    asyncio.run(prepare(store, tag, folder))
    figures: dict[str, float] = {}
    for kind in ("tokenbank", "raw"):
        for workload in WORKLOADS:
            start_at = time.time() + 1.0 + seconds / 4  # every process connected before the window opens
            jobs = [(store, kind, workload, tag, folder, start_at, seconds, n) for n in range(PROCESSES)]
            figures[f"{kind} {workload}"] = sum(pool.map(process_main, jobs))
    asyncio.run(verify(store, tag, folder))
    return figures


async def cleanup(tag: str) -> None:
    await drop_schema(PG_DSN, tag)
    await delete_keys(REDIS_URL, "{" + tag + "*")  # the bank's keys and the raw hash


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--store", choices=STORES, action="append", help="measure only this store (repeatable)")
    options = parser.parse_args()
    if warning := busy_warning():
        print(warning)
    seconds = 0.5 if options.quick else 6.0
    tag = "tbhot_" + secrets.token_hex(4)
    results: dict[str, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as folder, multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
            for store in options.store or STORES:
                results[store] = measure(store, tag, folder, seconds, pool)
    finally:
        asyncio.run(cleanup(tag))
    rows = []
    for store, f in results.items():
        bank_ratio = f["tokenbank hot-source"] / f["tokenbank uniform"]
        raw_ratio = f["raw hot-source"] / f["raw uniform"]
        f.update(tokenbank_hot_ratio=bank_ratio, raw_hot_ratio=raw_ratio,
                 hot_vs_raw=f["tokenbank hot-source"] / f["raw hot-source"])  # fmt: skip
        rows.append([store, f["tokenbank uniform"], f["tokenbank hot-source"], f"{bank_ratio:.2f}x", f["raw uniform"],
                     f["raw hot-source"], f"{raw_ratio:.2f}x", f"{f['hot_vs_raw']:.2f}x"])  # fmt: skip
    print(f"{PROCESSES} processes x {TASKS} tasks, {ACCOUNTS} accounts, {seconds} s per run, transfers per second")
    headers = ["store", "tokenbank uniform", "tokenbank hot", "hot/uniform", "raw uniform", "raw hot",
               "raw hot/uniform", "tokenbank hot / raw hot"]  # fmt: skip
    print(format_table(headers, rows))
    if options.json:
        write_json(options.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
