"""What account controls cost a transfer, on each store, beside a plain transfer measured in the same run:

    .venv/bin/python benchmarks/account_controls.py [--quick] [--json out.json]

For SQLite (a file), PostgreSQL and Redis: ``bank.transfer()`` from 32 concurrent tasks between 200 funded
accounts for a fixed time, between accounts without controls ("plain") and between accounts that each have a
maximum balance and a spend limit per window, both far above what the load reaches ("limited": every transfer
is checked against both, none is refused). Runs go plain, limited, limited, plain, five times; the median run
of each side is reported.

Two ratios, limited over plain: the cost, CPU seconds per transfer of every process doing the work (this
process, with SQLite's writer thread, plus the Redis server, or PostgreSQL's own processes and the backends
serving this process), and the throughput (plain tx/s / limited tx/s). The target, at most 1.2x, is on the cost:
on two shared cores throughput also measures whatever else the machine runs, while CPU per transfer is what the
checks add. The cost ratio is the median of the ratios of neighbouring runs (plain-limited, limited-plain, ...),
so a ledger that slows as it grows, or a machine whose speed drifts, weighs on both runs of a pair alike.
``--quick``: one short run of each on 20 accounts (a smoke test, not a measurement).

Uses the test services (PostgreSQL 127.0.0.1:5432 database ``test``, Redis 127.0.0.1:6379) under a unique
schema / key prefix, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from _common import (
    LoadResult,
    busy_warning,
    delete_keys,
    drop_schema,
    format_table,
    median_run,
    postgres_cpu,
    run_closed_loop,
    write_json,
)
from tokenbank import Settings, TokenBank, TransferRequest

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
ACCOUNTS = 200
CONCURRENCY = 32
TARGET = 1.2
ORDER = ("plain", "limited", "limited", "plain")
STORES = ("sqlite", "postgres", "redis")


def settings_for(store: str, tag: str, folder: Path) -> Settings:
    common: dict[str, Any] = {"symbol": "BC", "initial_supply": 10_000_000, "hold_sweep_interval": 0}
    if store == "sqlite":
        return Settings(database_url=f"sqlite+aiosqlite:///{folder / 'bench.db'}", **common)
    if store == "postgres":
        return Settings(database_url=PG_URL, database_schema=tag, **common)
    return Settings(storage_mode="redis", redis_url=REDIS_URL, key_prefix=tag, **common)


@dataclass(frozen=True, slots=True)
class Run:
    """One timed run: its load figures and the CPU seconds per transfer of every process doing the work."""

    load: LoadResult
    cpu_per_transfer: float


def server_cpu(store: str, client: aioredis.Redis) -> Callable[[], Awaitable[float]]:
    """CPU seconds so far of the server processes ``store`` runs on (none for SQLite: it runs in this one)."""

    async def cpu() -> float:
        if store == "redis":
            info = await client.info("cpu")
            return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        return postgres_cpu(os.getpid()) if store == "postgres" else 0.0

    return cpu


async def timed_run(bank: TokenBank, users: list[str], seconds: float, cpu: Callable[[], Awaitable[float]]) -> Run:
    rng, done = random.Random(7), [0]

    async def one() -> None:
        sender, receiver = rng.sample(users, 2)
        await bank.transfer(sender, receiver, "0.01")
        done[0] += 1

    app, server = time.process_time(), await cpu()
    load = await run_closed_loop(one, CONCURRENCY, seconds=seconds, warmup_seconds=seconds / 5)
    used = time.process_time() - app + await cpu() - server
    return Run(load, used / max(done[0], 1))


def paired_cost_ratios(runs: list[tuple[str, Run]]) -> list[float]:
    """Limited over plain CPU per transfer of each pair of neighbouring runs (plain-limited, limited-plain, ...): a
    ledger that slows as it grows, or a machine that speeds up or slows down, weighs on both runs of a pair alike."""
    return [
        (a if a_name == "limited" else b).cpu_per_transfer / (b if a_name == "limited" else a).cpu_per_transfer
        for (a_name, a), (_, b) in zip(runs[::2], runs[1::2], strict=True)
    ]


async def measure(store: str, seconds: float, rounds: int, accounts: int, tag: str, folder: Path) -> dict[str, Any]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        async with TokenBank(settings_for(store, tag, folder)) as bank:
            groups = {"plain": [f"p{i}" for i in range(accounts)], "limited": [f"l{i}" for i in range(accounts)]}
            # Funded alternately (p0, l0, p1, l1, ...): where Redis keeps a small hash as a listpack, a field is found
            # by a scan from the front, so a group funded second would pay for its place in the balances, not its
            # limits.
            pairs = zip(groups["plain"], groups["limited"], strict=True)
            await bank.transfer_many([TransferRequest("treasury", user, 10_000) for pair in pairs for user in pair])
            for user in groups["limited"]:
                await bank.set_limits(user, max_balance=1_000_000, spend_per_window=(1_000_000, 3600))
            runs = [(name, await timed_run(bank, groups[name], seconds, server_cpu(store, client)))
                    for name in ORDER * rounds]  # fmt: skip
            report = await bank.verify()
            assert report.ok, report
    finally:
        await client.aclose()
    plain = median_run([run.load for name, run in runs if name == "plain"])
    limited = median_run([run.load for name, run in runs if name == "limited"])
    plain_cost = statistics.median([run.cpu_per_transfer for name, run in runs if name == "plain"])
    limited_cost = statistics.median([run.cpu_per_transfer for name, run in runs if name == "limited"])
    ratios = paired_cost_ratios(runs)
    return {
        "plain_tps": plain.tps, "limited_tps": limited.tps, "throughput_ratio": plain.tps / limited.tps,
        "plain_cpu_us": plain_cost * 1e6, "limited_cpu_us": limited_cost * 1e6, "cost_ratio": statistics.median(ratios),
        "pair_cost_ratios": ratios,
        "plain_p99_ms": plain.p99_ms, "limited_p99_ms": limited.p99_ms,
    }  # fmt: skip


async def cleanup(tag: str) -> None:
    await drop_schema(PG_URL.replace("+asyncpg", ""), tag)
    await delete_keys(REDIS_URL, "{" + tag + ":*")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--store", choices=STORES, action="append", help="measure only this store (repeatable)")
    options = parser.parse_args()
    if warning := busy_warning():
        print(warning)
    seconds, rounds, accounts = (0.3, 1, 20) if options.quick else (4.0, 5, ACCOUNTS)
    tag = "tbbc_" + secrets.token_hex(4)
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for store in options.store or STORES:
                results[store] = await measure(store, seconds, rounds, accounts, tag, Path(folder))
    finally:
        await cleanup(tag)
    rows = [
        [store, f"{r['plain_tps']:,.0f}", f"{r['limited_tps']:,.0f}", f"{r['throughput_ratio']:.2f}x",
         f"{r['plain_cpu_us']:.0f}", f"{r['limited_cpu_us']:.0f}", f"{r['cost_ratio']:.2f}x",
         "met" if r["cost_ratio"] <= TARGET else "NOT met"]
        for store, r in results.items()
    ]  # fmt: skip
    runs = len(ORDER) * rounds // 2
    print(f"bank.transfer(), {CONCURRENCY} tasks, {accounts} accounts per group, {runs} runs of {seconds} s each: "
          f"medians of the runs; cost ratio = median of the {runs} neighbouring pairs' ratios")  # fmt: skip
    headers = ["store", "plain tx/s", "limited tx/s", "tps ratio", "plain CPU µs/tx", "limited CPU µs/tx"]
    print(format_table([*headers, "cost ratio", f"target <= {TARGET}x"], rows))
    for store, r in results.items():
        print(f"{store}: pair cost ratios {', '.join(f'{ratio:.2f}' for ratio in r['pair_cost_ratios'])}")
    if options.json:
        write_json(options.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
