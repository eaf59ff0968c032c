"""What account controls cost a transfer, on each store, beside a plain transfer measured in the same run:

    .venv/bin/python benchmarks/account_controls.py [--quick] [--json out.json]

For SQLite (a file), PostgreSQL and Redis: ``bank.transfer()`` from 32 concurrent tasks between 200 funded
accounts for a fixed time, first between accounts without controls ("plain"), then between accounts that each
have a maximum balance and a spend limit per window, both far above what the load reaches ("limited": every
transfer is checked against both, none is refused). Runs alternate plain / limited three times; the median of
each is reported with the cost ratio plain tps / limited tps. Target: at most 1.2x on each store. ``--quick``:
one short run of each on 20 accounts (a smoke test, not a measurement).

Uses the test services (PostgreSQL 127.0.0.1:5432 database ``test``, Redis 127.0.0.1:6379) under a unique
schema / key prefix, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from _common import LoadResult, busy_warning, format_table, median_run, run_closed_loop, write_json
from tokenbank import Settings, TokenBank, TransferRequest

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
ACCOUNTS = 200
CONCURRENCY = 32
TARGET = 1.2


def settings_for(store: str, tag: str, folder: Path) -> Settings:
    common: dict[str, Any] = {"symbol": "BC", "initial_supply": 10_000_000, "hold_sweep_interval": 0}
    if store == "sqlite":
        return Settings(database_url=f"sqlite+aiosqlite:///{folder / 'bench.db'}", **common)
    if store == "postgres":
        return Settings(database_url=PG_URL, database_schema=tag, **common)
    return Settings(storage_mode="redis", redis_url=REDIS_URL, key_prefix=tag, **common)


async def measure(store: str, seconds: float, rounds: int, accounts: int, tag: str, folder: Path) -> dict[str, Any]:
    async with TokenBank(settings_for(store, tag, folder)) as bank:
        groups = {"plain": [f"p{i}" for i in range(accounts)], "limited": [f"l{i}" for i in range(accounts)]}
        for users in groups.values():
            await bank.transfer_many([TransferRequest("treasury", user, 10_000) for user in users])
        for user in groups["limited"]:
            await bank.set_limits(user, max_balance=1_000_000, spend_per_window=(1_000_000, 3600))
        runs: dict[str, list[LoadResult]] = {"plain": [], "limited": []}
        for _ in range(rounds):
            for name, users in groups.items():
                rng = random.Random(7)

                async def one(users: list[str] = users, rng: random.Random = rng) -> None:
                    sender, receiver = rng.sample(users, 2)
                    await bank.transfer(sender, receiver, "0.01")

                runs[name].append(await run_closed_loop(one, CONCURRENCY, seconds=seconds, warmup_seconds=seconds / 5))
        report = await bank.verify()
        assert report.ok, report
    plain, limited = median_run(runs["plain"]), median_run(runs["limited"])
    return {
        "plain_tps": plain.tps, "limited_tps": limited.tps, "cost_ratio": plain.tps / limited.tps,
        "plain_p99_ms": plain.p99_ms, "limited_p99_ms": limited.p99_ms,
    }  # fmt: skip


async def cleanup(tag: str) -> None:
    conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{tag}" CASCADE')
    finally:
        await conn.close()
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match="{" + tag + ":*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.unlink(*keys[start : start + 500])
    finally:
        await client.aclose()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument("--json", help="also write the figures to this file")
    options = parser.parse_args()
    if warning := busy_warning():
        print(warning)
    seconds, rounds, accounts = (0.3, 1, 20) if options.quick else (5.0, 3, ACCOUNTS)
    tag = "tbbc_" + secrets.token_hex(4)
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for store in ("sqlite", "postgres", "redis"):
                results[store] = await measure(store, seconds, rounds, accounts, tag, Path(folder))
    finally:
        await cleanup(tag)
    rows = [
        [store, f"{r['plain_tps']:,.0f}", f"{r['limited_tps']:,.0f}", f"{r['cost_ratio']:.2f}x",
         "met" if r["cost_ratio"] <= TARGET else "NOT met"]
        for store, r in results.items()
    ]  # fmt: skip
    print(
        f"bank.transfer(), {CONCURRENCY} tasks, {accounts} accounts per group, median of {rounds} run(s) of {seconds} s"
    )
    print(format_table(["store", "plain tx/s", "with limits tx/s", "cost ratio", f"target <= {TARGET}x"], rows))
    if options.json:
        write_json(options.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
