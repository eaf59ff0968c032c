"""The PostgreSQL benchmark's results: one cell per workload x concurrency, the printed tables and ratio lines.

Two sets of targets: the asyncpg targets (tokenbank against plain asyncpg sending the same tb_apply call) and
the pgbench targets (tokenbank against pgbench running the one-statement transfer and set-based batches on plain
tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from _common import LoadResult, format_table

TARGET_RATIO = 0.8
TARGET_CONCURRENCY = (8, 32)
PGBENCH_TASKS = (32, 128)
ONE_STATEMENT_TARGET = {"uniform": 2.0, "hot-source": 3.0}
BATCH_TARGET = 0.7


@dataclass(frozen=True, slots=True)
class Cell:
    """One row: tokenbank and plain asyncpg (and pgbench's tps) on the same workload at the same concurrency."""

    workload: str
    tasks: int
    tokenbank: LoadResult
    asyncpg: LoadResult
    connections: int  # each client's: fewer than the tasks where the server's max_connections would not allow
    pgbench_tps: float | None = None
    targeted: bool = False

    @property
    def ratio(self) -> float:
        return self.tokenbank.tps / self.asyncpg.tps

    def as_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "tasks": self.tasks,
            "tokenbank": self.tokenbank.as_dict(),
            "asyncpg": self.asyncpg.as_dict(),
            "pgbench_tps": self.pgbench_tps,
            "ratio_tokenbank_asyncpg": round(self.ratio, 3),
            "targeted": self.targeted,
            "connections": self.connections,
        }


def _row(c: Cell) -> list[object]:
    ours, raw = c.tokenbank, c.asyncpg
    return [
        *(c.workload, c.tasks, ours.tps, ours.p50_ms, ours.p99_ms, ours.units_per_call),
        *(raw.tps, raw.p50_ms, raw.p99_ms, c.pgbench_tps, c.ratio),
    ]


def target_met(cells: list[Cell]) -> bool:
    return all(c.ratio >= TARGET_RATIO for c in cells if c.targeted)


def report(cells: list[Cell], pgbench_present: bool) -> str:
    """The table, a legend, one ``ratio tokenbank/asyncpg ...`` line per cell and the target verdict."""
    headers = ["workload", "tasks", "tokenbank/s", "p50 ms", "p99 ms", "ops/call"]
    headers += ["asyncpg/s", "p50 ms", "p99 ms", "pgbench/s", "tb/asyncpg"]
    rows = [_row(c) for c in cells]
    lines = [format_table(headers, rows), ""]
    lines.append("transfers/s; p50/p99: latency of one call (a transfer, or a whole transfer_many batch);")
    lines.append("ops/call: transfers per tb_apply statement tokenbank sent (it coalesces concurrent writes);")
    lines.append("asyncpg and pgbench send one tb_apply call per transfer (per batch in the transfer_many row).")
    for many, conns in sorted({(c.tasks, c.connections) for c in cells if c.connections < c.tasks}):
        lines.append(f"{many} tasks share {conns} connections per client (tokenbank pool_size={conns}, an asyncpg")
        lines.append(f"pool of {conns}; pgbench runs {conns} clients): stock PostgreSQL allows 100 connections.")
    if not pgbench_present:
        lines.append("pgbench not installed: its column is empty")
    lines.append("")
    for c in cells:
        mark = ("ok" if c.ratio >= TARGET_RATIO else "BELOW") if c.targeted else "info"
        lines.append(f"ratio tokenbank/asyncpg {c.workload:<19} {c.tasks:>3} tasks: {c.ratio:5.2f}  [{mark}]")
    verdict = "MET" if target_met(cells) else "NOT MET"
    tasks = " and ".join(map(str, TARGET_CONCURRENCY))
    lines.append(f"target: tokenbank >= {TARGET_RATIO}x asyncpg at {tasks} tasks on both workloads: {verdict}")
    return "\n".join(lines)


# against pgbench on plain tables ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Comparison:
    """tokenbank on one workload at one concurrency against a pgbench baseline on the plain tables."""

    workload: str
    tasks: int
    tokenbank: LoadResult
    baseline: str  # "one-statement" or "set-based x1000"
    baseline_clients: int
    baseline_tps: float  # transfers/s: pgbench tps x per_statement
    target: float
    per_statement: int = 1  # transfers per pgbench statement

    @property
    def ratio(self) -> float:
        return self.tokenbank.tps / self.baseline_tps

    @property
    def met(self) -> bool:
        return self.ratio >= self.target

    def as_dict(self) -> dict[str, Any]:
        ours = self.tokenbank
        return {
            "workload": self.workload,
            "tasks": self.tasks,
            "tokenbank_tps": round(ours.tps, 1),
            "p50_ms": round(ours.p50_ms, 2),
            "p99_ms": round(ours.p99_ms, 2),
            "baseline": f"pgbench {self.baseline}",
            "baseline_clients": self.baseline_clients,
            "baseline_tps": round(self.baseline_tps, 1),
            "baseline_transfers_per_statement": self.per_statement,
            "ratio": round(self.ratio, 3),
            "target": self.target,
            "met": self.met,
        }


@dataclass(frozen=True, slots=True)
class Target:
    """One target against pgbench: every comparison of a workload against its baseline must reach the ratio."""

    workload: str
    baseline: str
    baseline_clients: int
    ratio: float
    tasks: tuple[int, ...]
    met: bool

    def line(self) -> str:
        tasks = " and ".join(map(str, self.tasks)) + (" tasks" if self.tasks != (1,) else " task")
        clients = f"{self.baseline_clients} client" + ("s" if self.baseline_clients != 1 else "")
        verdict = "met" if self.met else "NOT met"
        baseline = f"{self.ratio}x pgbench {self.baseline} ({clients})"
        return f"target (vs pgbench) {self.workload}: tokenbank at {tasks} >= {baseline}: {verdict}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "baseline": f"pgbench {self.baseline}",
            "baseline_clients": self.baseline_clients,
            "target": self.ratio,
            "tasks": list(self.tasks),
            "met": self.met,
        }


def pgbench_targets(comparisons: list[Comparison]) -> list[Target]:
    groups: dict[tuple[str, str], list[Comparison]] = {}
    for c in comparisons:
        groups.setdefault((c.workload, c.baseline), []).append(c)
    return [
        Target(*key, g[0].baseline_clients, g[0].target, tuple(c.tasks for c in g), all(c.met for c in g))
        for key, g in groups.items()
    ]


def pgbench_report(comparisons: list[Comparison]) -> str:
    """The table against pgbench, a legend, one ``ratio tokenbank/pgbench ...`` line per comparison and one target
    line per workload."""
    headers = ["workload", "tasks", "tokenbank/s", "p50 ms", "p99 ms", "pgbench baseline", "clients"]
    headers += ["baseline/s", "ratio", "target"]
    rows = [
        [c.workload, c.tasks, c.tokenbank.tps, c.tokenbank.p50_ms, c.tokenbank.p99_ms, c.baseline,
         c.baseline_clients, c.baseline_tps, c.ratio, c.target]
        for c in comparisons
    ]  # fmt: skip
    lines = [
        "tokenbank vs pgbench on plain tables (bench_accounts, bench_journal: the same accounts,",
        "balances and treasury, in the same schema)",
        "",
        format_table(headers, rows),
        "",
    ]
    lines.append("one-statement: one CTE per transfer (debit if enough, credit, insert a journal row);")
    lines.append("set-based x1000: one statement per 1,000 transfers (net delta per account, one UPDATE ... FROM,")
    lines.append("1,000 journal rows), pgbench with 1 client against transfer_many with 1 task;")
    lines.append("baseline/s: pgbench tps x transfers per statement; ratio: tokenbank/s / baseline/s.")
    lines.append("")
    for c in comparisons:
        mark = "ok" if c.met else "BELOW"
        name = f"tokenbank/pgbench {c.baseline}"
        lines.append(f"ratio {name:<33} {c.workload:<19} {c.tasks:>3} tasks: {c.ratio:5.2f}  [{mark}]")
    lines += [target.line() for target in pgbench_targets(comparisons)]
    return "\n".join(lines)
