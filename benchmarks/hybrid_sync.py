"""Hybrid mode: transfer throughput with the sync worker running, beside redis mode; sync lag; backlog drain rate
beside the SQL mode's single-transfer rate -- all measured in one run.

    .venv/bin/python benchmarks/hybrid_sync.py [--quick] [--json out.json]

1. redis mode, then hybrid mode (worker in the same process, as an app runs it): ``bank.transfer()`` from 50
   concurrent tasks for a fixed time; transfers/s, p50/p99 latency, and the ratio hybrid/redis.
2. Sync lag under that load: for every entry, PostgreSQL commit time minus Redis commit time (p50/p99); then
   the same with the load held at 80 % of the hybrid rate just measured (a fixed schedule, 50 tasks).
3. Drain: a backlog of 1,000,000 entries (20,000 with --quick) written with the worker stopped, then one worker
   drains it into PostgreSQL: entries/s, beside ``bank.transfer()`` in sql mode on the same PostgreSQL from 50
   tasks, and their ratio.
Everything lives in its own PostgreSQL schema and Redis key prefix, removed at the end (also on error). Targets
are printed, never asserted: the exit status is 0 unless something failed or the stores disagree afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from _common import (
    LoadResult,
    busy_warning,
    environment,
    format_table,
    median_run,
    percentile,
    run_closed_loop,
    run_paced,
    write_json,
)
from tokenbank import Settings, TokenBank, TransferRequest
from tokenbank.storage.hybrid import stream
from tokenbank.storage.hybrid.backend import HybridStorage
from tokenbank.storage.hybrid.reconcile import reconcile
from tokenbank.storage.hybrid.status import SyncOptions

DSN = os.environ.get("TOKENBANK_BENCH_DSN", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("TOKENBANK_BENCH_REDIS", "redis://127.0.0.1:6379/0")
CONCURRENCY = 50
BATCH = 1000
PACED_SHARE = 0.8
"""The sync-lag target holds at this share of the hybrid mode's measured maximum rate."""


@dataclass(frozen=True, slots=True)
class Plan:
    accounts: int
    seconds: float
    warmup: float
    backlog: int
    rounds: int


FULL = Plan(accounts=10_000, seconds=10.0, warmup=1.0, backlog=1_000_000, rounds=3)
QUICK = Plan(accounts=500, seconds=2.0, warmup=0.3, backlog=20_000, rounds=1)


def settings(mode: str, schema: str, prefix: str, symbol: str, **extra: Any) -> Settings:
    return Settings.load(
        storage_mode=mode, database_url=DSN, database_schema=schema, redis_url=REDIS, key_prefix=prefix,
        symbol=symbol, initial_supply=10**12, decimals=0, hold_sweep_interval=0, pool_size=CONCURRENCY, **extra,
    )  # fmt: skip


async def funded(bank: TokenBank, accounts: list[str]) -> None:
    for start in range(0, len(accounts), BATCH):
        chunk = accounts[start : start + BATCH]
        results = await bank.transfer_many([TransferRequest("treasury", a, 10**6) for a in chunk])
        assert all(r.ok for r in results)


async def transfers(bank: TokenBank, accounts: list[str], plan: Plan, rate: float | None = None) -> LoadResult:
    """``bank.transfer()`` from CONCURRENCY tasks: back to back, or started at ``rate`` per second."""
    rng = random.Random(7)

    async def one() -> None:
        a, b = rng.sample(accounts, 2)
        await bank.transfer(a, b, 1)

    if rate is not None:
        return await run_paced(one, CONCURRENCY, rate, seconds=plan.seconds, warmup_seconds=plan.warmup)
    return await run_closed_loop(one, CONCURRENCY, seconds=plan.seconds, warmup_seconds=plan.warmup)


def lag_figures(lags: Sequence[float], after: float, drained: bool) -> dict[str, Any]:
    return {
        "p50_ms": percentile(lags, 50) * 1000, "p99_ms": percentile(lags, 99) * 1000, "entries": len(lags),
        "drained_after_load_s": after, "drained": drained,
    }  # fmt: skip


async def throughput(plan: Plan, schema: str, prefix: str, out: dict[str, Any]) -> None:
    """redis and hybrid cells in turn (``plan.rounds`` each, the median reported), both banks open throughout."""
    accounts = [f"a{i:06d}" for i in range(plan.accounts)]
    async with (
        TokenBank(settings("redis", schema, prefix, "BR")) as redis_bank,
        TokenBank(settings("hybrid", schema, prefix, "BH")) as hybrid_bank,
    ):
        store = hybrid_bank.storage
        assert isinstance(store, HybridStorage) and store.worker is not None
        await funded(redis_bank, accounts)
        await funded(hybrid_bank, accounts)
        await stream.wait_drained(store.redis.client, store.redis.keys, 120)
        redis_runs, hybrid_runs, lags, after = [], [], [], []
        drained = True
        for _ in range(plan.rounds):
            redis_runs.append(await transfers(redis_bank, accounts, plan))
            store.worker.status.lag_samples.clear()
            hybrid_runs.append(await transfers(hybrid_bank, accounts, plan))
            started = time.perf_counter()
            drained = drained and await stream.wait_drained(store.redis.client, store.redis.keys, 300)
            after.append(time.perf_counter() - started)
            lags.extend(store.worker.status.lag_samples)
        hybrid = median_run(hybrid_runs)
        out["redis"] = median_run(redis_runs).as_dict()
        out["hybrid"] = hybrid.as_dict()
        out["sync_lag"] = lag_figures(lags, max(after), drained)
        # The same, with the load held at PACED_SHARE of the rate the hybrid bank just reached.
        rate = PACED_SHARE * hybrid.tps
        store.worker.status.lag_samples.clear()
        paced = await transfers(hybrid_bank, accounts, plan, rate=rate)
        started = time.perf_counter()
        paced_drained = await stream.wait_drained(store.redis.client, store.redis.keys, 300)
        out["paced"] = {**paced.as_dict(), "offered_per_s": round(rate, 1)}
        out["sync_lag_paced"] = lag_figures(
            store.worker.status.lag_samples, time.perf_counter() - started, paced_drained
        )
        out["hybrid_reconcile_ok"] = (await reconcile(store)).ok
        out["hybrid_verify_ok"] = (await hybrid_bank.verify()).ok


async def drain_rate(plan: Plan, schema: str, prefix: str, out: dict[str, Any]) -> None:
    accounts = [f"d{i:06d}" for i in range(plan.accounts)]
    async with TokenBank(settings("hybrid", schema, prefix, "BD", enable_synchronization=False)) as bank:
        store = bank.storage
        assert isinstance(store, HybridStorage)
        await funded(bank, accounts)
        rng = random.Random(11)
        written = len(accounts) + 1
        started = time.perf_counter()
        while written < plan.backlog:
            size = min(BATCH, plan.backlog - written)
            requests = [TransferRequest(*rng.sample(accounts, 2), 1) for _ in range(size)]
            await bank.transfer_many(requests)
            written += size
        out["backlog"] = {"entries": written, "written_s": time.perf_counter() - started}
        worker = store.start_worker(SyncOptions(block_ms=100))
        started = time.perf_counter()
        drained = await stream.wait_drained(store.redis.client, store.redis.keys, 3600)
        seconds = time.perf_counter() - started
        out["drain"] = {
            "entries": worker.status.synced, "seconds": seconds, "entries_per_s": worker.status.synced / seconds,
            "batches": worker.status.batches, "drained": drained,
        }  # fmt: skip
        report = await reconcile(store)
        out["drain_reconcile_ok"] = report.ok
    accounts = accounts[:1000]
    async with TokenBank(settings("sql", schema, prefix, "BS")) as bank:
        await funded(bank, accounts)
        out["sql_single"] = (await transfers(bank, accounts, plan)).as_dict()


async def cleanup(schema: str, prefix: str) -> None:
    conn = await asyncpg.connect(DSN.replace("+asyncpg", ""), timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
    client = aioredis.Redis.from_url(REDIS, decode_responses=True)
    try:
        batch = []
        async for key in client.scan_iter(match="{" + prefix + ":*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()


def report(out: dict[str, Any]) -> bool:
    redis_r, hybrid_r, sql_r = out["redis"], out["hybrid"], out["sql_single"]
    rows = [
        ["redis mode, transfer()", redis_r["tps"], redis_r["p50_ms"], redis_r["p99_ms"]],
        ["hybrid mode, transfer() + worker", hybrid_r["tps"], hybrid_r["p50_ms"], hybrid_r["p99_ms"]],
        ["sql mode (PostgreSQL), transfer()", sql_r["tps"], sql_r["p50_ms"], sql_r["p99_ms"]],
        ["hybrid drain into PostgreSQL", out["drain"]["entries_per_s"], None, None],
    ]
    print(format_table([f"{CONCURRENCY} tasks", "per s", "p50 ms", "p99 ms"], rows))
    lag = out["sync_lag"]
    print(f"sync lag under load: p50 {lag['p50_ms']:.1f} ms, p99 {lag['p99_ms']:.1f} ms ({lag['entries']} entries); "
          f"drained {lag['drained_after_load_s']:.2f} s after the load stopped")  # fmt: skip
    paced, paced_lag = out["paced"], out["sync_lag_paced"]
    print(f"sync lag at {PACED_SHARE:.0%} of the hybrid max ({paced['offered_per_s']:,.0f} offered, "
          f"{paced['tps']:,.0f} transfers/s done, p99 {paced['p99_ms']:.1f} ms): p50 {paced_lag['p50_ms']:.1f} ms, "
          f"p99 {paced_lag['p99_ms']:.1f} ms ({paced_lag['entries']} entries) (target p99 < 250 ms)")  # fmt: skip
    print(f"backlog: {out['drain']['entries']:,} entries drained in {out['drain']['seconds']:.1f} s")
    print(f"ratio hybrid/redis transfers/s: {hybrid_r['tps'] / redis_r['tps']:.2f}")
    print(f"ratio drain/sql-transfer entries/s: {out['drain']['entries_per_s'] / sql_r['tps']:.2f}")
    checks = ("hybrid_reconcile_ok", "hybrid_verify_ok", "drain_reconcile_ok")
    drained = lag["drained"] and paced_lag["drained"] and out["drain"]["drained"]
    ok = all(out[name] for name in checks) and drained
    print("stores agree afterwards: " + ("yes" if ok else "NO"))
    return bool(ok)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if warning := busy_warning():
        print(warning)
    schema, prefix = "bench_hy_" + secrets.token_hex(4), "bhy" + secrets.token_hex(4)
    out: dict[str, Any] = {"plan": asdict(plan), "quick": args.quick, "environment": environment()}
    try:
        await throughput(plan, schema, prefix, out)
        await drain_rate(plan, schema, prefix, out)
    finally:
        await cleanup(schema, prefix)
    ok = report(out)
    if args.json:
        write_json(args.json, out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
