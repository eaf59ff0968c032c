"""What credit lots cost a transfer, on each store, beside a plain transfer measured in the same run:

    .venv/bin/python benchmarks/lots.py [--quick] [--json out.json] [--store sqlite|postgres|redis]

For SQLite (a file), PostgreSQL and Redis: ``bank.transfer()`` from 32 concurrent tasks between 200 funded
accounts for a fixed time, between accounts without lots ("plain"), accounts that each hold 5 lots and accounts
that each hold 50 (mixed expiries a year or more away, a fifth of them without expiry; each lot far larger than
what the load spends, so every account keeps all of its lots and every debit walks them in spend order). Each
round runs plain, 5 lots, 50 lots, 50 lots, 5 lots, plain; a round's ratio is the lot runs' mean cost over the
plain runs' mean cost, so a ledger that slows as it grows, or a machine whose speed drifts, weighs on both alike.
Reported: the median round's ratios of the cost (CPU seconds per transfer of every process doing the work: this
process, with SQLite's writer thread, plus the Redis server, or PostgreSQL's own processes and the backends
serving this process) and of the throughput. Target: 5 lots cost at most 1.5x a plain transfer on each store.
``--quick``: one short round on 20 accounts (a smoke test, not a measurement).

Uses the test services (PostgreSQL 127.0.0.1:5432 database ``test``, Redis 127.0.0.1:6379) under a unique
schema / key prefix, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from _common import busy_warning, format_table, median_run, write_json
from account_controls import REDIS_URL, STORES, Run, cleanup, server_cpu, settings_for, timed_run
from tokenbank import TokenBank, TransferRequest

ACCOUNTS = 200
GROUPS = {"plain": 0, "lots5": 5, "lots50": 50}
ORDER = ("plain", "lots5", "lots50", "lots50", "lots5", "plain")
TARGET = 1.5


async def give_lots(bank: TokenBank, users: list[str], count: int) -> None:
    """``count`` lots of 1,000 to each account, expiring a year or more from now (every fifth: never)."""
    year = datetime.now(UTC) + timedelta(days=365)
    for index in range(count):
        expiry = None if index % 5 == 4 else year + timedelta(days=index)
        await asyncio.gather(*(bank.grant(user, 1000, expires_at=expiry) for user in users))


async def measure(store: str, seconds: float, rounds: int, accounts: int, tag: str, folder: Path) -> dict[str, Any]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        async with TokenBank(settings_for(store, tag, folder)) as bank:
            groups = {name: [f"{name}-{i}" for i in range(accounts)] for name in GROUPS}
            for name, users in groups.items():
                await bank.transfer_many([TransferRequest("treasury", user, 10_000) for user in users])
                await give_lots(bank, users, GROUPS[name])
            runs: list[tuple[str, Run]] = []
            for name in ORDER * rounds:
                runs.append((name, await timed_run(bank, groups[name], seconds, server_cpu(store, client))))
            report = await bank.verify()
            assert report.ok, report
    finally:
        await client.aclose()
    result: dict[str, Any] = {}
    per_round = [runs[i : i + len(ORDER)] for i in range(0, len(runs), len(ORDER))]
    for name in GROUPS:
        load = median_run([run.load for kind, run in runs if kind == name])
        result[f"{name}_tps"] = load.tps
        result[f"{name}_cpu_us"] = statistics.median([run.cpu_per_transfer for kind, run in runs if kind == name]) * 1e6
        result[f"{name}_p99_ms"] = load.p99_ms
    for name in ("lots5", "lots50"):
        ratios = [_mean_cost(one, name) / _mean_cost(one, "plain") for one in per_round]
        result[f"{name}_round_cost_ratios"] = ratios
        result[f"{name}_cost_ratio"] = statistics.median(ratios)
        result[f"{name}_throughput_ratio"] = result["plain_tps"] / result[f"{name}_tps"]
    return result


def _mean_cost(runs: list[tuple[str, Run]], name: str) -> float:
    return statistics.mean(run.cpu_per_transfer for kind, run in runs if kind == name)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--store", choices=STORES, action="append", help="measure only this store (repeatable)")
    options = parser.parse_args()
    if warning := busy_warning():
        print(warning)
    seconds, rounds, accounts = (0.3, 1, 20) if options.quick else (3.0, 3, ACCOUNTS)
    tag = "tblots_" + secrets.token_hex(4)
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for store in options.store or STORES:
                results[store] = await measure(store, seconds, rounds, accounts, tag, Path(folder))
    finally:
        await cleanup(tag)
    rows = [
        [store, f"{r['plain_tps']:,.0f}", f"{r['lots5_tps']:,.0f}", f"{r['lots50_tps']:,.0f}",
         f"{r['plain_cpu_us']:.0f}", f"{r['lots5_cpu_us']:.0f}", f"{r['lots50_cpu_us']:.0f}",
         f"{r['lots5_cost_ratio']:.2f}x", f"{r['lots50_cost_ratio']:.2f}x",
         "met" if r["lots5_cost_ratio"] <= TARGET else "NOT met"]
        for store, r in results.items()
    ]  # fmt: skip
    print(f"bank.transfer(), 32 tasks, {accounts} accounts per group, {rounds} round(s) of {len(ORDER)} runs of "
          f"{seconds} s: medians; cost ratio: the median round's (lot runs' / plain runs' mean cost)")  # fmt: skip
    headers = ["store", "plain tx/s", "5 lots tx/s", "50 lots tx/s", "plain CPU µs", "5 lots CPU µs", "50 lots CPU µs"]
    print(format_table([*headers, "5 lots cost", "50 lots cost", f"5 lots target <= {TARGET}x"], rows))
    for store, r in results.items():
        pairs = zip(r["lots5_round_cost_ratios"], r["lots50_round_cost_ratios"], strict=True)
        rounds_text = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in pairs)
        print(f"{store}: round cost ratios (5 lots/50 lots) {rounds_text}")
    if options.json:
        write_json(options.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
