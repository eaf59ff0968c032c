"""Every performance target in one command: each beside its baseline from the same run, with the ratio.

    .venv/bin/python benchmarks/run_all.py [--quick] [--json out.json]

Runs, one after the other (never two at once: client and server share the machine's cores):
1. ``pg_transfers.py``: PostgreSQL ``transfer()`` at 32 and 128 tasks (uniform, hot source) vs pgbench running
   the one-statement transfer at 32 clients, ``transfer_many`` x1,000 vs pgbench set-based batches;
2. ``redis_transfers.py --private-redis``: Redis with 1,000,000 accounts, transfers per Redis-CPU-second vs the
   seed-style script (uniform, half from the treasury), ``transfer()`` at 200 tasks vs redis-py at 50;
3. ``low_load.py``: one task, one call at a time, p50 with batching on vs off, on SQLite, PostgreSQL and Redis.
Each prints its own report; this command then prints one table of every target and writes everything (the three
reports' JSON and the table) to ``--json``. Targets are reported, never asserted: the exit status is 0 unless a
benchmark failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import environment, format_table, write_json

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "postgres": ["pg_transfers.py"],
    "redis": ["redis_transfers.py", "--private-redis"],
    "low_load": ["low_load.py"],
}


def target_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per target: figure, value, baseline, baseline value, ratio, target, met."""
    rows = []
    for c in results["postgres"]["vs_pgbench"]["comparisons"]:
        rows.append({
            "figure": f"PostgreSQL {c['workload']}, {c['tasks']} tasks: transfers/s (p99 {c['p99_ms']:.0f} ms)",
            "value": c["tokenbank_tps"],
            "baseline": f"{c['baseline']}, {c['baseline_clients']} clients",
            "baseline_value": c["baseline_tps"],
            "ratio": c["ratio"],
            "target": f">= {c['target']}x",
            "met": c["met"],
        })  # fmt: skip
    for row in results["redis"]["summary"]:
        if row["key"] in ("transfer_200_vs_seed_50", "redis_cpu_uniform", "redis_cpu_treasury_50"):
            rows.append({
                "figure": f"Redis {row['figure']}",
                "value": row["value"],
                "baseline": row["baseline"],
                "baseline_value": row["baseline_value"],
                "ratio": row["ratio"],
                "target": row["target"],
                "met": row["met"],
            })  # fmt: skip
    for r in results["low_load"]["results"]:
        rows.append({
            "figure": f"{r['store']}: p50 ms, 1 task, batching on",
            "value": r["batching_on"]["p50_ms"],
            "baseline": "the same, batching off",
            "baseline_value": r["batching_off"]["p50_ms"],
            "ratio": r["ratio_p50"],
            "target": f"<= {r['target']}x",
            "met": r["met"],
        })  # fmt: skip
    return rows


def run_one(script: list[str], quick: bool, out: Path) -> dict[str, Any]:
    """Run one benchmark script (its report goes to our stdout) and return its JSON."""
    argv = [sys.executable, str(HERE / script[0]), *script[1:], "--json", str(out), *(["--quick"] if quick else [])]
    print(f"\n=== {' '.join(script)}{' --quick' if quick else ''}", flush=True)
    subprocess.run(argv, check=True)
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every benchmark in its --quick mode (a smoke run)")
    parser.add_argument("--json", metavar="PATH", help="write all results and the target table as JSON")
    args = parser.parse_args(argv)
    info = environment()
    with tempfile.TemporaryDirectory(prefix="tb-bench-all-") as tmp:
        try:
            results = {
                name: run_one(script, args.quick, Path(tmp) / f"{name}.json") for name, script in BENCHMARKS.items()
            }
        except subprocess.CalledProcessError as exc:
            print(f"benchmark failed: {' '.join(map(str, exc.cmd))} (exit {exc.returncode})", file=sys.stderr)
            return 1
    rows = target_rows(results)
    print("\n=== targets (each figure beside its baseline from the same run)")
    headers = ["figure", "tokenbank", "baseline", "baseline value", "ratio", "target", "met"]
    table = [
        [
            r["figure"],
            r["value"],
            r["baseline"],
            r["baseline_value"],
            r["ratio"],
            r["target"],
            "yes" if r["met"] else "NO",
        ]
        for r in rows
    ]
    print(format_table(headers, table))
    print(f"targets met: {sum(r['met'] for r in rows)} of {len(rows)}")
    if args.json:
        write_json(args.json, {"benchmark": "run_all", "environment": info, "targets": rows, **results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
