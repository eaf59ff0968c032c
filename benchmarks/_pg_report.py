"""The PostgreSQL benchmark's results: one cell per workload x concurrency, the printed table and ratio lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from _common import LoadResult, format_table

TARGET_RATIO = 0.8
TARGET_CONCURRENCY = (8, 32)


@dataclass(frozen=True, slots=True)
class Cell:
    """One row: tokenbank and plain asyncpg (and pgbench's tps) on the same workload at the same concurrency."""

    workload: str
    tasks: int
    tokenbank: LoadResult
    asyncpg: LoadResult
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
    if not pgbench_present:
        lines.append("pgbench not installed: its column is empty")
    lines.append("")
    for c in cells:
        mark = ("ok" if c.ratio >= TARGET_RATIO else "BELOW") if c.targeted else "info"
        lines.append(f"ratio tokenbank/asyncpg {c.workload:<19} {c.tasks:>2} tasks: {c.ratio:5.2f}  [{mark}]")
    verdict = "MET" if target_met(cells) else "NOT MET"
    tasks = " and ".join(map(str, TARGET_CONCURRENCY))
    lines.append(f"target: tokenbank >= {TARGET_RATIO}x asyncpg at {tasks} tasks on both workloads: {verdict}")
    return "\n".join(lines)
