"""Does one hot account slow a token down when several processes write it? Uniform vs hot-source, same run:

    .venv/bin/python benchmarks/hot_source.py [--quick] [--json out.json] [--store sqlite|postgres|redis ...]
                                              [--batch on|off|both] [--slices 2-64]

Four OS processes with 32 tasks each run ``bank.transfer()`` on one token for a fixed time, started together:
"uniform" (random pairs of 200 funded accounts), "hot-source" (every transfer leaves the treasury for one of the
200, as a game paying rewards does) and, on PostgreSQL, "hot-sliced": hot-source with the treasury split into
slices (``hot_accounts={"treasury": 8}``; ``--slices``). On PostgreSQL each runs with the bank's write batching on
and off (``batch_writes``; ``--batch``), elsewhere with batching on. Beside them, in the same run, the same
processes and tasks doing the same debit and credit on the raw store, with no ledger at all: PostgreSQL, plain
asyncpg running one transaction of two ``UPDATE``s on a plain table (a pool of 10 connections per process, as the
bank's), so every hot-source transaction waits for the treasury row's lock, and its hot-sliced one debits a random
one of as many treasury rows as the bank has slices; Redis, plain redis-py running
``MULTI``/``HINCRBY``/``HINCRBY``/``EXEC``; SQLite (a file), plain sqlite3 running ``BEGIN IMMEDIATE`` and two
``UPDATE``s. After each bank run the tables are read directly:
the total supply must equal every account's balance + held + every slice, and the treasury's row + slices its
journal replayed (the script fails otherwise); ``verify()`` runs at the end, the treasury joined back.

It prints transfers per second of each, the hot/uniform ratios with and without slices, and tokenbank/raw. What
it showed on a shared 2-core machine: with batching on, one hot account costs nothing on any store (PostgreSQL
locks the treasury row once per batch, not once per transfer; SQLite's one writer and Redis's one thread have no
row to wait for), and slices change nothing. With batching off on PostgreSQL every transfer waits for the
treasury's lock (about 0.35x of uniform); 8 slices brought it to 0.55x. More slices did no better: the commits then
wait mostly for the database-wide lock that each commit sending a ``NOTIFY`` (balance events) holds, and for CPU.

``--quick``: short runs (a smoke test, not a measurement).

Uses the test services (PostgreSQL 127.0.0.1:5432 database ``test``, Redis 127.0.0.1:6379) under a unique
schema / key prefix, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
WORKLOADS = ("uniform", "hot-source", "hot-sliced")
SLICES = 8
"""``hot-sliced``: the treasury split into this many slices by default (``hot_accounts={"treasury": 8}``)."""
BATCHING = {"on": (True,), "off": (False,), "both": (True, False)}
HOT = 0
"""The raw tables' treasury row: accounts 1..ACCOUNTS are the others, and -1..-(slices - 1) the treasury's other
rows of the raw hot-sliced run."""
TREASURY = "treasury"


def workloads(store: str) -> tuple[str, ...]:
    """Only PostgreSQL splits a hot account: SQLite and Redis accept the setting and change nothing."""
    return WORKLOADS if store == "postgres" else WORKLOADS[:2]


def figure_name(kind: str, workload: str, batch: bool = True) -> str:
    """A figure's key in the JSON output: ``tokenbank hot-sliced``, ``tokenbank uniform unbatched``, ``raw uniform``."""
    return f"{kind} {workload}" + ("" if batch else " unbatched")


def bank_settings(store: str, tag: str, folder: str, *, batch: bool = True, slices: int | None = None) -> Settings:
    """The benchmark's bank; on PostgreSQL, ``slices`` splits the treasury into that many (1: joins it back)."""
    common: dict[str, Any] = {"symbol": "HOT", "initial_supply": 100_000_000, "hold_sweep_interval": 0,
                              "batch_writes": batch}  # fmt: skip
    if store == "sqlite":
        return Settings(database_url=f"sqlite+aiosqlite:///{folder}/bank.db", **common)
    if store == "postgres":
        hot = {TREASURY: slices} if slices else {}
        return Settings(database_url=PG_DSN.replace("postgresql:", "postgresql+asyncpg:"), database_schema=tag,
                        hot_accounts=hot, **common)  # fmt: skip
    return Settings(storage_mode="redis", redis_url=REDIS_URL, key_prefix=tag, **common)


def pair(workload: str, rng: random.Random, slices: int = SLICES) -> tuple[int, int]:
    """(from, to) account numbers of one transfer: 0 is the treasury, and in the raw hot-sliced run so is each of
    -1..-(slices - 1) (the raw store's own split: a random one of its ``slices`` rows)."""
    if workload == "hot-source":
        return HOT, rng.randint(1, ACCOUNTS)
    if workload == "hot-sliced":
        return -rng.randrange(slices), rng.randint(1, ACCOUNTS)
    first, second = rng.sample(range(1, ACCOUNTS + 1), 2)
    return first, second


async def bank_transfers(store: str, tag: str, folder: str, workload: str, batch: bool,
                         slices: int) -> tuple[Callable[[str, random.Random], Any], Any]:  # fmt: skip
    # Each process opens the bank with the run's setting, as an app would: treasury:8 splits the treasury (the
    # first process to open does it, the others find it done), treasury:1 joins it back for the other runs.
    hot = slices if workload == "hot-sliced" else 1
    bank = TokenBank(bank_settings(store, tag, folder, batch=batch, slices=hot))
    await bank.open()

    async def one(workload: str, rng: random.Random) -> None:
        sender, receiver = pair(workload, rng)
        await bank.transfer(TREASURY if sender <= HOT else f"u{sender}", f"u{receiver}", "0.01")

    return one, bank.close


async def raw_transfers(store: str, tag: str, folder: str, workload: str, batch: bool,
                        slices: int) -> tuple[Callable[[str, random.Random], Any], Any]:  # fmt: skip
    if store == "postgres":
        pool = await asyncpg.create_pool(PG_DSN, min_size=10, max_size=10)
        table = f'"{tag}".raw_accounts'

        async def pg(workload: str, rng: random.Random) -> None:
            low, high = sorted(pair(workload, rng, slices))  # locks in id order: no deadlocks between transfers
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(f"UPDATE {table} SET balance = balance - 1 WHERE id = $1", low)
                await conn.execute(f"UPDATE {table} SET balance = balance + 1 WHERE id = $1", high)

        return pg, pool.close
    if store == "redis":
        client = aioredis.Redis.from_url(REDIS_URL)
        key = "{" + tag + "}:raw"

        async def rd(workload: str, rng: random.Random) -> None:
            sender, receiver = pair(workload, rng, slices)
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
            await asyncio.to_thread(sqlite_transfer, *pair(workload, rng, slices))

    async def close() -> None:
        db.close()

    return lite, close


async def process_run(store: str, kind: str, workload: str, batch: bool, slices: int, tag: str, folder: str,
                      start_at: float, seconds: float, seed: int) -> float:  # fmt: skip
    """One process's transfers per second in the window that starts at ``start_at`` (wall clock)."""
    make = bank_transfers if kind == "tokenbank" else raw_transfers
    one, close = await make(store, tag, folder, workload, batch, slices)
    rng = random.Random(seed)
    try:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        load = await run_closed_loop(lambda: one(workload, rng), TASKS, seconds=seconds, warmup_seconds=seconds / 4)
    finally:
        await close()
    return load.tps


def process_main(args: tuple[Any, ...]) -> float:
    return asyncio.run(process_run(*args))


async def prepare(store: str, tag: str, folder: str, slices: int) -> None:
    """The bank's token with 200 funded accounts, and the raw table or hash with the same accounts (and the
    treasury's ``slices`` rows)."""
    async with TokenBank(bank_settings(store, tag, folder)) as bank:
        users = [f"u{i}" for i in range(1, ACCOUNTS + 1)]
        await bank.transfer_many([TransferRequest(TREASURY, user, 10_000) for user in users])
    if store == "postgres":
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(f'CREATE TABLE "{tag}".raw_accounts (id int PRIMARY KEY, balance bigint NOT NULL)')
            await conn.execute(f'INSERT INTO "{tag}".raw_accounts SELECT i, 1000000000 '
                               f"FROM generate_series({1 - slices}, {ACCOUNTS}) i")  # fmt: skip
        finally:
            await conn.close()
    elif store == "sqlite":
        with sqlite3.connect(f"{folder}/raw.db") as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE raw_accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
            rows = [(i,) for i in range(1 - slices, ACCOUNTS + 1)]
            db.executemany("INSERT INTO raw_accounts VALUES (?, 1000000000)", rows)


# Read straight from the tables, not through the bank: a hot account's balance is its row's plus its slices'.
CONSERVATION_SQL = """
SELECT t.total_supply AS supply,
       (SELECT COALESCE(sum(balance + held), 0) FROM {s}tb_accounts WHERE token = t.symbol) AS accounts,
       (SELECT COALESCE(sum(balance), 0) FROM {s}tb_account_shards WHERE token = t.symbol) AS slices,
       (SELECT count(*) FROM {s}tb_account_shards WHERE token = t.symbol AND user_id = '{treasury}') AS treasury_slices,
       (SELECT COALESCE(sum(CASE WHEN to_user_id = '{treasury}' THEN amount ELSE -amount END), 0)
        FROM {s}tb_transactions WHERE token = t.symbol
          AND (from_user_id = '{treasury}' OR to_user_id = '{treasury}')) AS treasury_replayed,
       (SELECT COALESCE(sum(balance), 0) FROM {s}tb_accounts
        WHERE token = t.symbol AND user_id = '{treasury}') AS treasury_row,
       (SELECT count(*) FROM {s}tb_transactions WHERE token = t.symbol AND from_user_id = '{treasury}'
          AND from_balance_after IS NULL) AS unknown_balance_after
FROM {s}tb_tokens t WHERE t.symbol = 'HOT'
"""


async def conservation(store: str, tag: str, folder: str, run: str) -> dict[str, Any]:
    """After a bank run, from the raw tables: total supply == every account's balance + held + every slice, and the
    treasury's row + slices == its journal replayed. Raises RuntimeError when either does not hold. On Redis, the
    bank's own ``verify()`` (no slices there)."""
    if store == "redis":
        async with TokenBank(bank_settings(store, tag, folder)) as bank:
            report = await bank.verify()
        if not report.ok:
            raise RuntimeError(f"{store} after {run}: {report}")
        return {"run": run, "ok": True}
    if store == "postgres":
        conn = await asyncpg.connect(PG_DSN)
        try:
            row = dict(await conn.fetchrow(CONSERVATION_SQL.format(s=f'"{tag}".', treasury=TREASURY)))
        finally:
            await conn.close()
    else:
        with contextlib.closing(sqlite3.connect(f"{folder}/bank.db")) as db:
            db.row_factory = sqlite3.Row
            row = dict(db.execute(CONSERVATION_SQL.format(s="", treasury=TREASURY)).fetchone())
    row = {key: int(value) for key, value in row.items()}
    ok = row["supply"] == row["accounts"] + row["slices"]
    ok = ok and row["treasury_replayed"] == row["treasury_row"] + row["slices"]  # the treasury is the only hot one
    if not ok:
        raise RuntimeError(f"{store} after {run}: the ledger does not add up: {row}")
    return {"run": run, "ok": True, **row}


async def verify(store: str, tag: str, folder: str) -> None:
    """The bank's own checks, once the treasury is joined back (they read account rows only)."""
    async with TokenBank(bank_settings(store, tag, folder, slices=1)) as bank:
        report = await bank.verify()
        if not report.ok:
            raise RuntimeError(f"{store}: {report}")


def measure(store: str, tag: str, folder: str, seconds: float, batching: tuple[bool, ...], slices: int,
            pool: Any) -> dict[str, Any]:  # fmt: skip
    """Transfers per second of every (kind, workload, batching), all processes together, the workloads alternating;
    the raw store once (it has no batching). ``checks``: the conservation check after each bank run. SQLite and
    Redis run with batching on only: there is no lock for slices to share out there."""
    if store != "postgres":
        batching = (True,)
    asyncio.run(prepare(store, tag, folder, slices))
    figures: dict[str, Any] = {}
    checks: list[dict[str, Any]] = []
    runs = [("tokenbank", batch) for batch in batching] + [("raw", True)]
    for kind, batch in runs:
        for workload in workloads(store):
            start_at = time.time() + 1.0 + seconds / 4  # every process connected before the window opens
            jobs = [(store, kind, workload, batch, slices, tag, folder, start_at, seconds, n) for n in range(PROCESSES)]
            name = figure_name(kind, workload, batch)
            figures[name] = sum(pool.map(process_main, jobs))
            if kind == "tokenbank":
                checks.append(asyncio.run(conservation(store, tag, folder, name)))
    asyncio.run(verify(store, tag, folder))
    figures["checks"] = checks
    if "hot-sliced" in workloads(store):
        figures["slices"] = slices
    return figures


def add_ratios(f: dict[str, Any]) -> None:
    """hot/uniform of each run, with and without slices, and tokenbank/raw, for each batching measured."""
    raw: dict[str, float] = {w: f.get(figure_name("raw", w), 0.0) for w in WORKLOADS}
    if raw["uniform"]:
        f["raw_hot_ratio"] = raw["hot-source"] / raw["uniform"]
        if raw["hot-sliced"]:
            f["raw_sliced_ratio"] = raw["hot-sliced"] / raw["uniform"]
    for batch, suffix in ((True, ""), (False, "_unbatched")):
        bank: dict[str, float] = {w: f.get(figure_name("tokenbank", w, batch), 0.0) for w in WORKLOADS}
        if not bank["uniform"]:
            continue
        f["tokenbank_hot_ratio" + suffix] = bank["hot-source"] / bank["uniform"]
        f["hot_vs_raw" + suffix] = bank["hot-source"] / raw["hot-source"]
        if bank["hot-sliced"]:
            f["tokenbank_sliced_ratio" + suffix] = bank["hot-sliced"] / bank["uniform"]
            f["sliced_vs_raw" + suffix] = bank["hot-sliced"] / raw["hot-sliced"]


def times(ratio: float | None) -> str | None:
    return None if ratio is None else f"{ratio:.2f}x"


def tables(results: dict[str, dict[str, Any]], slices: int) -> str:
    """Two tables: tokenbank per store and batching, and the raw store's baselines of the same run."""
    bank_rows, raw_rows = [], []
    for store, f in results.items():
        for batch, suffix in ((True, ""), (False, "_unbatched")):
            if figure_name("tokenbank", "uniform", batch) in f:
                bank = [f.get(figure_name("tokenbank", w, batch)) for w in WORKLOADS]
                ratios = [f.get(name + suffix) for name in ("tokenbank_hot_ratio", "tokenbank_sliced_ratio")]
                vs_raw = [f.get(name + suffix) for name in ("hot_vs_raw", "sliced_vs_raw")]
                bank_rows.append([store, "on" if batch else "off", bank[0], bank[1], times(ratios[0]), bank[2],
                                  times(ratios[1]), times(vs_raw[0]), times(vs_raw[1])])  # fmt: skip
        raw = [f.get(figure_name("raw", w)) for w in WORKLOADS]
        raw_rows.append([store, raw[0], raw[1], times(f.get("raw_hot_ratio")), raw[2],
                         times(f.get("raw_sliced_ratio"))])  # fmt: skip
    bank_headers = ["store", "batching", "uniform", "hot", "hot/uniform", f"hot, {slices} slices", "sliced/uniform",
                    "hot / raw hot", "sliced / raw sliced"]  # fmt: skip
    raw_headers = ["store", "raw uniform", "raw hot", "raw hot/uniform", f"raw hot, {slices} rows",
                   "raw sliced/uniform"]  # fmt: skip
    raw_title = "raw store (no ledger), same processes and tasks"
    return "\n".join(["tokenbank", format_table(bank_headers, bank_rows), "", raw_title,
                      format_table(raw_headers, raw_rows)])  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--store", choices=STORES, action="append", help="measure only this store (repeatable)")
    parser.add_argument("--batch", choices=tuple(BATCHING), default="both",
                        help="PostgreSQL: write batching (batch_writes) on, off or both (default)")  # fmt: skip
    parser.add_argument("--slices", type=int, choices=range(2, 65), default=SLICES, metavar="2-64",
                        help=f"the treasury's slices in the hot-sliced runs (default {SLICES})")  # fmt: skip
    options = parser.parse_args()
    if warning := busy_warning():
        print(warning)
    seconds = 0.5 if options.quick else 6.0
    tag = "tbhot_" + secrets.token_hex(4)
    results: dict[str, dict[str, Any]] = {}
    try:
        with tempfile.TemporaryDirectory() as folder, multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
            for store in options.store or STORES:
                results[store] = measure(store, tag, folder, seconds, BATCHING[options.batch], options.slices, pool)
    finally:
        asyncio.run(cleanup(tag))
    for figures in results.values():
        add_ratios(figures)
    print(f"{PROCESSES} processes x {TASKS} tasks, {ACCOUNTS} accounts, {seconds} s per run, transfers per second")
    print(tables(results, options.slices))
    if options.json:
        write_json(options.json, results)
    return 0


async def cleanup(tag: str) -> None:
    await drop_schema(PG_DSN, tag)
    await delete_keys(REDIS_URL, "{" + tag + "*")  # the bank's keys and the raw hash


if __name__ == "__main__":
    raise SystemExit(main())
