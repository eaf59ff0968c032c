"""Every figure of a ``run_all`` run as one flat, machine-readable row beside its in-run baseline.

A row: ``group`` (which benchmark), ``figure``, ``unit``, ``ours``, ``baseline`` (its value), ``baseline_name``,
``ratio`` (ours / baseline), ``higher_is_better``, ``target`` (text, or None for a figure shown for
information), ``met`` (None without a target), ``conditions`` (latency, connections, then ``setup``: accounts,
seconds per run, --quick, which the rows of one benchmark share) and
``headline`` (one of the targets ``run_all.py`` prints as its table; every row is charted).
"""

from __future__ import annotations

from typing import Any

TPS = "transfers/s"
# The Redis figures of the headline table; the others are charted too.
HEADLINE_REDIS = ("transfer_200_vs_seed_50", "redis_cpu_uniform", "redis_cpu_treasury_50")
Row = dict[str, Any]


def figure_rows(results: dict[str, dict[str, Any]], quick: bool) -> list[Row]:
    """The rows of whichever benchmarks ran (``results`` holds one report per benchmark name)."""
    makers = {"postgres": _postgres, "redis": _redis, "low_load": _low_load}
    rows: list[Row] = []
    for name, report in results.items():
        rows.extend(makers[name](report, " (--quick)" if quick else ""))
    return rows


def _row(group: str, figure: str, unit: str, ours: float, baseline: float, baseline_name: str, **rest: Any) -> Row:
    ratio = rest.pop("ratio", None)
    return {
        "group": group,
        "figure": figure,
        "unit": unit,
        "ours": ours,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": ratio if ratio is not None else (ours / baseline if baseline else None),
        "higher_is_better": rest.pop("higher_is_better", True),
        "target": rest.pop("target", None),
        "met": rest.pop("met", None),
        "conditions": "; ".join(part for part in (rest.pop("detail", ""), rest["setup"]) if part),
        "setup": rest.pop("setup"),
        "headline": rest.pop("headline", False),
    }


def _tasks(count: int, word: str = "task") -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _postgres(report: dict[str, Any], quick: str) -> list[Row]:
    plan = report["plan"]
    where = f"{plan['accounts']:,} accounts, {plan['seconds']} s per run (pgbench {plan['pgbench_seconds']} s)"
    where += f", median of {plan['rounds']}{quick}"
    rows = []
    for c in report["vs_pgbench"]["comparisons"]:
        rows.append(
            _row(
                "postgres",
                f"PostgreSQL {c['workload']}, {_tasks(c['tasks'])}",
                TPS,
                c["tokenbank_tps"],
                c["baseline_tps"],
                f"{c['baseline']}, {_tasks(c['baseline_clients'], 'client')}",
                ratio=c["ratio"],
                target=f">= {c['target']}x",
                met=c["met"],
                headline=True,
                detail=f"tokenbank p50 {c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms",
                setup=where,
            )
        )
    target = report["target"]
    for cell in report["cells"]:
        ours, raw = cell["tokenbank"], cell["asyncpg"]
        rows.append(
            _row(
                "postgres-asyncpg",
                f"PostgreSQL {cell['workload']}, {_tasks(cell['tasks'])}",
                TPS,
                ours["tps"],
                raw["tps"],
                f"asyncpg, the same call, {_tasks(cell['tasks'])}",
                ratio=cell["ratio_tokenbank_asyncpg"],
                target=f">= {target['ratio']}x" if cell["targeted"] else None,
                met=cell["ratio_tokenbank_asyncpg"] >= target["ratio"] if cell["targeted"] else None,
                detail=f"tokenbank p50 {ours['p50_ms']:.1f} ms, p99 {ours['p99_ms']:.1f} ms, "
                f"{cell['connections']} connections",
                setup=where,
            )
        )
    return rows


def _redis_unit(key: str) -> tuple[str, bool]:
    """The unit of a Redis summary row, and whether more is better."""
    if key.startswith("memory"):
        return "B/account", False
    if key.endswith("_ms"):
        return "ms", False
    if key.startswith("redis_cpu"):
        return "transfers per Redis-CPU-s", True
    return TPS, True


def _redis(report: dict[str, Any], quick: str) -> list[Row]:
    plan = report["plan"]
    where = f"{plan['accounts']:,} accounts, {plan['seconds']} s per run{quick}"
    where += ", private redis-server" if report.get("private_redis") else ", shared redis-server"
    rows = []
    for r in report["summary"]:
        if r["ratio"] is None or not r["baseline_value"]:
            continue
        unit, higher = _redis_unit(r["key"])
        rows.append(
            _row(
                "redis",
                f"Redis {r['figure']}",
                unit,
                r["value"],
                r["baseline_value"],
                r["baseline"],
                ratio=r["ratio"],
                higher_is_better=higher,
                target=None if r["target"] in (None, "-") else r["target"],
                met=r["met"],
                setup=where,
                headline=r["key"] in HEADLINE_REDIS,
            )
        )
    return rows


def _low_load(report: dict[str, Any], quick: str) -> list[Row]:
    where = f"1 task, one call at a time, {report['seconds']} s per run, median of {report['rounds']}{quick}"
    return [
        _row(
            "low_load",
            f"{r['store']}: p50 ms, 1 task, batching on",
            "ms",
            r["batching_on"]["p50_ms"],
            r["batching_off"]["p50_ms"],
            "the same, batching off",
            ratio=r["ratio_p50"],
            higher_is_better=False,
            target=f"<= {r['target']}x",
            met=r["met"],
            headline=True,
            detail=f"p99 {r['batching_on']['p99_ms']:.2f} ms on, {r['batching_off']['p99_ms']:.2f} ms off",
            setup=where,
        )
        for r in report["results"]
    ]
