"""PostgreSQL transfer throughput: tokenbank vs plain asyncpg vs pgbench, side by side in one run.

    .venv/bin/python benchmarks/pg_transfers.py [--quick] [--json out.json] [--rounds N]
                                                [--setting NAME=VALUE ...] [--dsn postgresql://...]

Sets up its own schema (100,000 funded accounts; 1,000 with --quick, which also runs each cell's pgbench at 32
tasks only), then runs, one after the other and
never at the same time:

* for each workload (uniform; hot-source: every transfer leaves the treasury) and each concurrency (1, 8, 32,
  128 tasks): tokenbank ``bank.transfer()``, plain asyncpg sending the same ``tb_apply`` call, and pgbench with
  the same call in a custom script (target: tokenbank >= 0.8x asyncpg at 8 and 32 tasks);
* ``transfer_many`` batches of 1,000 against asyncpg sending the same 1,000-op JSON;
* against pgbench on plain tables in the same schema (same accounts, balances and treasury): pgbench running the
  one-statement transfer at 32 clients against tokenbank at 32 and 128 tasks (targets 2.0x uniform, 3.0x
  hot-source), and pgbench running set-based batches of 1,000 transfers per statement with 1 client against
  ``transfer_many`` with 1 task (target 0.7x).

The schema is dropped at the end, also on error. Targets are reported, never asserted: the exit status is 0
unless something failed or the ledgers (tokenbank's, and the plain tables against their journal) do not
verify afterwards.

``--setting`` passes a library setting to every bank of the run, e.g. ``--setting batch_writes=false`` or
``--setting enable_notifications=false``; the baselines follow, as they send what the library sends.
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
from _common import LoadResult, busy_warning, environment, median_run, run_closed_loop, write_json
from _pg_clients import (
    WireFormat,
    Workload,
    asyncpg_batch,
    asyncpg_transfer,
    bank_batch,
    bank_transfer,
    capture_wire_format,
    count_tb_apply_calls,
    open_asyncpg_pool,
    open_bank,
    workloads,
)
from _pg_env import DEFAULT_DSN, Ledger, bench_ledger, verify_ledger, verify_plain_tables
from _pg_report import (
    BATCH_TARGET,
    ONE_STATEMENT_TARGET,
    PGBENCH_TASKS,
    TARGET_CONCURRENCY,
    TARGET_RATIO,
    Cell,
    Comparison,
    pgbench_report,
    pgbench_targets,
    report,
    target_met,
)

CONCURRENCY = (1, 8, 32, 128)
BATCH_SIZE = 1_000
MAX_CONNECTIONS = 32
"""Connections per client: more tasks share them. Stock PostgreSQL allows 100, and tokenbank's pool may
overflow to twice its size (with ``batch_writes=false`` 128 tasks would otherwise ask for 256)."""
ONE_STATEMENT_CLIENTS = 32


@dataclass(frozen=True, slots=True)
class Plan:
    accounts: int
    seconds: float  # per measured cell
    warmup_seconds: float  # unmeasured, before each cell (also opens the pool's connections)
    pgbench_seconds: int  # pgbench -T takes whole seconds
    batches: int  # transfer_many batches per client
    pgbench_tasks: tuple[int, ...] = CONCURRENCY  # the concurrencies whose cells also run pgbench's tb_apply call
    rounds: int = 1  # each measurement repeated, in turn with the other clients; the median round is reported


FULL = Plan(accounts=100_000, seconds=5.0, warmup_seconds=0.5, pgbench_seconds=5, batches=20)
QUICK = Plan(accounts=1_000, seconds=0.25, warmup_seconds=0.05, pgbench_seconds=1, batches=2, pgbench_tasks=(32,))


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _tokenbank_run(ledger: Ledger, workload: Workload, tasks: int, plan: Plan, batch: int) -> LoadResult:
    async with open_bank(ledger, pool_size=min(tasks, MAX_CONNECTIONS)) as bank:
        operation = bank_batch(bank, workload, batch) if batch > 1 else bank_transfer(bank, workload)
        await run_closed_loop(operation, tasks, seconds=plan.warmup_seconds)
        with count_tb_apply_calls() as calls:
            if batch > 1:
                result = await run_closed_loop(operation, tasks, count=plan.batches, units_per_op=batch)
            else:
                result = await run_closed_loop(operation, tasks, seconds=plan.seconds)
    return replace(result, calls=calls[0])


async def _asyncpg_run(
    ledger: Ledger, wire: WireFormat, workload: Workload, tasks: int, plan: Plan, batch: int
) -> LoadResult:
    async with open_asyncpg_pool(ledger, size=min(tasks, MAX_CONNECTIONS)) as pool:
        if batch > 1:
            operation = asyncpg_batch(pool, wire, workload, batch)
            timing: dict[str, Any] = {"count": plan.batches, "units_per_op": batch}
        else:
            operation = asyncpg_transfer(pool, wire, workload)
            timing = {"seconds": plan.seconds}
        return await run_closed_loop(operation, tasks, warmup_seconds=plan.warmup_seconds, **timing)


async def measure(ledger: Ledger, wire: WireFormat, workload: Workload, tasks: int, plan: Plan, batch: int = 1) -> Cell:
    """tokenbank, then asyncpg, then pgbench (single transfers only), ``plan.rounds`` times in turn; each
    client's median round."""
    ours: list[LoadResult] = []
    raw: list[LoadResult] = []
    pgbench: list[float] = []
    connections = min(tasks, MAX_CONNECTIONS)
    for _ in range(plan.rounds):
        ours.append(await _tokenbank_run(ledger, workload, tasks, plan, batch))
        raw.append(await _asyncpg_run(ledger, wire, workload, tasks, plan, batch))
        if batch == 1 and tasks in plan.pgbench_tasks and _pgbench.available():
            script = _pgbench.tb_apply_script(workload, wire)
            pgbench.append((await _pgbench.run(ledger, script, connections, plan.pgbench_seconds)).tps)
    name = workload.name if batch == 1 else f"transfer_many x{batch}"
    cell = Cell(
        name, tasks, median_run(ours), median_run(raw), connections,
        pgbench_tps=statistics.median_low(pgbench) if pgbench else None,
        targeted=batch == 1 and tasks in TARGET_CONCURRENCY,
    )  # fmt: skip
    progress(f"  {name:<19} {tasks:>3} tasks: tokenbank {cell.tokenbank.tps:,.0f}/s, asyncpg {cell.asyncpg.tps:,.0f}/s")
    return cell


@dataclass(slots=True)
class PlainBaselines:
    """pgbench on the plain tables; counts the journal rows its statements must have written, so the check
    after the run catches a statement that moved nothing."""

    ledger: Ledger
    plan: Plan
    journal_rows: int = 0

    async def transfers_per_second(self, script: str, clients: int, per_statement: int = 1) -> float:
        """The median round's pgbench tps x ``per_statement`` transfers."""
        results = [
            await _pgbench.run(self.ledger, script, clients, self.plan.pgbench_seconds) for _ in range(self.plan.rounds)
        ]
        self.journal_rows += per_statement * sum(r.transactions for r in results)
        return statistics.median_low(r.tps for r in results) * per_statement


async def one_statement_comparisons(baselines: PlainBaselines, cells: list[Cell]) -> list[Comparison]:
    """Per workload: pgbench's one-statement transfer at 32 clients against tokenbank's 32- and 128-task cells."""
    comparisons = []
    for workload in workloads(baselines.plan.accounts):
        script = _pgbench.one_statement_script(workload)
        tps = await baselines.transfers_per_second(script, ONE_STATEMENT_CLIENTS)
        progress(f"  pgbench one-statement {workload.name}, {ONE_STATEMENT_CLIENTS} clients: {tps:,.0f}/s")
        comparisons += [
            Comparison(c.workload, c.tasks, c.tokenbank, "one-statement", ONE_STATEMENT_CLIENTS, tps,
                       ONE_STATEMENT_TARGET[workload.name])
            for c in cells
            if c.workload == workload.name and c.tasks in PGBENCH_TASKS
        ]  # fmt: skip
    return comparisons


async def set_based_comparison(baselines: PlainBaselines, batch_cell: Cell) -> Comparison:
    """pgbench with 1 client running set-based batches against ``transfer_many`` with 1 task."""
    script = _pgbench.set_based_script(baselines.plan.accounts, BATCH_SIZE)
    tps = await baselines.transfers_per_second(script, clients=1, per_statement=BATCH_SIZE)
    progress(f"  pgbench set-based x{BATCH_SIZE}, 1 client: {tps:,.0f} transfers/s")
    name, ours = f"set-based x{BATCH_SIZE}", batch_cell.tokenbank
    return Comparison(batch_cell.workload, batch_cell.tasks, ours, name, 1, tps, BATCH_TARGET, per_statement=BATCH_SIZE)


def _print_header(ledger: Ledger, wire: WireFormat, overrides: dict[str, str]) -> None:
    print(f"PostgreSQL {ledger.server_version}, schema {ledger.schema}, {ledger.accounts:,} accounts")
    print(f"setup (schema, token, set-based funding, plain tables, ANALYZE): {ledger.setup_seconds:.1f} s")
    print(f"library settings overridden: {overrides or 'none'}")
    print(f"library statement: {wire.statement}")
    print(f"library op JSON:   {json.dumps(wire.op_template)}  (the baselines send the same)")
    if not _pgbench.available():
        print("pgbench not installed: no pgbench column, no plain-table baselines")


async def run(plan: Plan, dsn: str, overrides: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    env = environment()
    if warning := busy_warning():
        print(warning)
    progress(f"setting up {plan.accounts:,} funded accounts ...")
    async with bench_ledger(dsn, plan.accounts, overrides) as ledger:
        wire = await capture_wire_format(ledger)
        _print_header(ledger, wire, overrides)
        uniform = workloads(plan.accounts)[0]
        cells = [
            await measure(ledger, wire, workload, tasks, plan)
            for workload in workloads(plan.accounts)
            for tasks in CONCURRENCY
        ]
        cells.append(await measure(ledger, wire, uniform, 1, plan, batch=BATCH_SIZE))
        baselines = PlainBaselines(ledger, plan)
        comparisons: list[Comparison] = []
        if _pgbench.available():
            comparisons = await one_statement_comparisons(baselines, cells)
            comparisons.append(await set_based_comparison(baselines, cells[-1]))
        problems = await verify_ledger(ledger) + await verify_plain_tables(ledger, baselines.journal_rows)
    print()
    print(report(cells, _pgbench.available()))
    if comparisons:
        print()
        print(pgbench_report(comparisons))
    print(f"verify: {'ok' if not problems else 'FAILED: ' + '; '.join(problems)}")
    print(f"total run time: {time.perf_counter() - started:.1f} s")
    return {
        "benchmark": "pg_transfers",
        "environment": {**env, "postgresql": ledger.server_version},
        "plan": asdict(plan),
        "settings_overrides": overrides,
        "setup_seconds": round(ledger.setup_seconds, 2),
        "library_statement": wire.statement,
        "library_op_json": wire.op_template,
        "cells": [c.as_dict() for c in cells],
        "target": {"ratio": TARGET_RATIO, "tasks": list(TARGET_CONCURRENCY), "met": target_met(cells)},
        "vs_pgbench": {
            "comparisons": [c.as_dict() for c in comparisons],
            "targets": [t.as_dict() for t in pgbench_targets(comparisons)],
        },
        "verify_problems": problems,
    }


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 accounts, 0.25 s cells (a smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every measurement; report the median round")
    parser.add_argument(
        "--setting", type=_setting, action="append", default=[], metavar="NAME=VALUE",
        help="a tokenbank Settings field for every bank of the run (repeatable)",
    )  # fmt: skip
    parser.add_argument("--dsn", default=DEFAULT_DSN, help=f"PostgreSQL URL (default {DEFAULT_DSN})")
    args = parser.parse_args(argv)
    plan = replace(QUICK if args.quick else FULL, rounds=max(1, args.rounds))
    results = asyncio.run(run(plan, args.dsn, dict(args.setting)))
    if args.json:
        write_json(args.json, results)
    return 1 if results["verify_problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
