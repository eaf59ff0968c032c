"""PostgreSQL transfer throughput: tokenbank vs plain asyncpg vs pgbench, side by side in one run (SPEC §8).

    .venv/bin/python benchmarks/pg_transfers.py [--quick] [--json out.json] [--dsn postgresql://...]

Sets up its own schema (100,000 funded accounts; 1,000 with --quick), then for each workload (uniform,
hot-source) and each concurrency (1, 8, 32 tasks) runs, one after the other and never at the same time:
tokenbank ``bank.transfer()``, plain asyncpg sending the same ``tb_apply`` call, and pgbench with the same call
in a custom script. Then ``transfer_many`` batches of 1,000 against asyncpg sending the same 1,000-op JSON.
The schema is dropped at the end, also on error. Targets are reported, never asserted: the exit status is 0
unless something failed or the ledger does not verify afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import _pgbench
from _common import LoadResult, busy_warning, environment, format_table, median_run, run_closed_loop, write_json
from _pg_clients import (
    WireFormat,
    Workload,
    asyncpg_batch,
    asyncpg_transfer,
    bank_batch,
    bank_transfer,
    capture_wire_format,
    open_asyncpg_pool,
    open_bank,
    workloads,
)
from _pg_env import DEFAULT_DSN, Ledger, bench_ledger, verify_ledger

CONCURRENCY = (1, 8, 32)
TARGET_RATIO = 0.8
TARGET_CONCURRENCY = (8, 32)
BATCH_SIZE = 1_000


@dataclass(frozen=True, slots=True)
class Plan:
    accounts: int
    seconds: float  # per measured cell
    warmup_seconds: float  # unmeasured, before each cell (also opens the pool's connections)
    pgbench_seconds: int  # pgbench -T takes whole seconds
    batches: int  # transfer_many batches per client
    rounds: int = 1  # each measurement repeated, in turn with the other clients; the median round is reported


FULL = Plan(accounts=100_000, seconds=5.0, warmup_seconds=0.5, pgbench_seconds=5, batches=20)
QUICK = Plan(accounts=1_000, seconds=0.5, warmup_seconds=0.1, pgbench_seconds=1, batches=2)


@dataclass(frozen=True, slots=True)
class Cell:
    workload: str
    tasks: int
    tokenbank: LoadResult
    asyncpg: LoadResult
    pgbench_tps: float | None

    @property
    def ratio(self) -> float:
        return self.tokenbank.tps / self.asyncpg.tps

    @property
    def targeted(self) -> bool:
        return self.tasks in TARGET_CONCURRENCY

    def as_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "tasks": self.tasks,
            "tokenbank": self.tokenbank.as_dict(),
            "asyncpg": self.asyncpg.as_dict(),
            "pgbench_tps": self.pgbench_tps,
            "ratio_tokenbank_asyncpg": round(self.ratio, 3),
        }


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def measure_cell(ledger: Ledger, wire: WireFormat, workload: Workload, tasks: int, plan: Plan) -> Cell:
    """tokenbank, then asyncpg, then pgbench (``plan.rounds`` times in turn); each client's median round."""
    timing: dict[str, Any] = {"seconds": plan.seconds, "warmup_seconds": plan.warmup_seconds}
    ours: list[LoadResult] = []
    raw: list[LoadResult] = []
    pgbench: list[float] = []
    for _ in range(plan.rounds):
        async with open_bank(ledger, pool_size=tasks) as bank:
            ours.append(await run_closed_loop(bank_transfer(bank, workload), tasks, **timing))
        async with open_asyncpg_pool(ledger, size=tasks) as pool:
            raw.append(await run_closed_loop(asyncpg_transfer(pool, wire, workload), tasks, **timing))
        if _pgbench.available():
            pgbench.append(await _pgbench.run(ledger, wire, workload, tasks, plan.pgbench_seconds))
    pgbench_tps = statistics.median_low(pgbench) if pgbench else None
    cell = Cell(workload.name, tasks, median_run(ours), median_run(raw), pgbench_tps)
    tb, apg = cell.tokenbank.tps, cell.asyncpg.tps
    progress(f"  {workload.name:<10} {tasks:>2} tasks: tokenbank {tb:,.0f}/s, asyncpg {apg:,.0f}/s")
    return cell


async def measure_batches(
    ledger: Ledger, wire: WireFormat, workload: Workload, plan: Plan
) -> tuple[LoadResult, LoadResult]:
    timing: dict[str, Any] = {"count": plan.batches, "warmup_seconds": 0.01, "units_per_op": BATCH_SIZE}
    ours: list[LoadResult] = []
    raw: list[LoadResult] = []
    for _ in range(plan.rounds):
        async with open_bank(ledger, pool_size=1) as bank:
            ours.append(await run_closed_loop(bank_batch(bank, workload, BATCH_SIZE), 1, **timing))
        async with open_asyncpg_pool(ledger, size=1) as pool:
            raw.append(await run_closed_loop(asyncpg_batch(pool, wire, workload, BATCH_SIZE), 1, **timing))
    return median_run(ours), median_run(raw)


def report(cells: list[Cell], batches: tuple[LoadResult, LoadResult], pgbench_present: bool) -> str:
    headers = ["workload", "tasks", "tokenbank/s", "p50 ms", "p99 ms", "asyncpg/s", "p50 ms", "p99 ms"]
    headers += ["pgbench/s", "tb/asyncpg"]
    rows = [_row(c.workload, c.tasks, c.tokenbank, c.asyncpg, c.pgbench_tps) for c in cells]
    ours, raw = batches
    rows.append(_row(f"transfer_many x{BATCH_SIZE}", 1, ours, raw, None))
    lines = [format_table(headers, rows), ""]
    if not pgbench_present:
        lines.append("pgbench not installed: its column is empty")
    lines.append("(transfers/s; latency per call; the transfer_many row counts transfers, latency per batch)")
    lines.append("")
    for c in cells:
        mark = ("ok" if c.ratio >= TARGET_RATIO else "BELOW") if c.targeted else "info"
        lines.append(f"ratio tokenbank/asyncpg {c.workload:<10} {c.tasks:>2} tasks: {c.ratio:.2f}  [{mark}]")
    lines.append(f"ratio tokenbank/asyncpg transfer_many x{BATCH_SIZE}: {ours.tps / raw.tps:.2f}  [info]")
    met = target_met(cells)
    lines.append(
        f"target: tokenbank >= {TARGET_RATIO}x asyncpg at {' and '.join(map(str, TARGET_CONCURRENCY))} tasks "
        f"on both workloads: {'MET' if met else 'NOT MET'}"
    )
    return "\n".join(lines)


def _row(name: str, tasks: int, ours: LoadResult, raw: LoadResult, pgbench: float | None) -> list[object]:
    return [
        name,
        tasks,
        ours.tps,
        ours.p50_ms,
        ours.p99_ms,
        raw.tps,
        raw.p50_ms,
        raw.p99_ms,
        pgbench,
        ours.tps / raw.tps,
    ]


def target_met(cells: list[Cell]) -> bool:
    return all(c.ratio >= TARGET_RATIO for c in cells if c.targeted)


async def run(plan: Plan, dsn: str, notifications: bool) -> dict[str, Any]:
    started = time.perf_counter()
    env = environment()
    if warning := busy_warning():
        print(warning)
    progress(f"setting up {plan.accounts:,} funded accounts ...")
    async with bench_ledger(dsn, plan.accounts, notifications) as ledger:
        print(f"PostgreSQL {ledger.server_version}, schema {ledger.schema}, {plan.accounts:,} accounts")
        print(f"setup (schema, token, set-based funding, ANALYZE): {ledger.setup_seconds:.1f} s")
        print(f"balance events (TOKEN_ENABLE_NOTIFICATIONS): {'on' if notifications else 'off'}")
        wire = await capture_wire_format(ledger)
        print(f"library statement: {wire.statement}")
        print(f"library op JSON:   {json.dumps(wire.op_template)}  (baselines send the same)")
        if not _pgbench.available():
            print("pgbench not installed")
        cells = [
            await measure_cell(ledger, wire, workload, tasks, plan)
            for workload in workloads(plan.accounts)
            for tasks in CONCURRENCY
        ]
        batches = await measure_batches(ledger, wire, workloads(plan.accounts)[0], plan)
        problems = await verify_ledger(ledger)
    print()
    print(report(cells, batches, _pgbench.available()))
    print(f"verify: {'ok' if not problems else 'FAILED: ' + '; '.join(problems)}")
    print(f"total run time: {time.perf_counter() - started:.1f} s")
    return {
        "benchmark": "pg_transfers",
        "environment": {**env, "postgresql": ledger.server_version},
        "plan": asdict(plan),
        "notifications": notifications,
        "setup_seconds": round(ledger.setup_seconds, 2),
        "library_statement": wire.statement,
        "library_op_json": wire.op_template,
        "cells": [c.as_dict() for c in cells],
        "transfer_many": {"batch_size": BATCH_SIZE, "tokenbank": batches[0].as_dict(), "asyncpg": batches[1].as_dict()},
        "target": {"ratio": TARGET_RATIO, "tasks": list(TARGET_CONCURRENCY), "met": target_met(cells)},
        "verify_problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 accounts, 0.5 s per cell (a smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--no-notify", action="store_true", help="run tokenbank with TOKEN_ENABLE_NOTIFICATIONS off (no pg_notify)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat every measurement; report the median round")
    parser.add_argument("--dsn", default=DEFAULT_DSN, help=f"PostgreSQL URL (default {DEFAULT_DSN})")
    args = parser.parse_args(argv)
    plan = replace(QUICK if args.quick else FULL, rounds=max(1, args.rounds))
    results = asyncio.run(run(plan, args.dsn, notifications=not args.no_notify))
    if args.json:
        write_json(args.json, results)
    return 1 if results["verify_problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
