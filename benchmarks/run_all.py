"""Every performance target in one command: each beside its baseline from the same run, with the ratio.

    .venv/bin/python benchmarks/run_all.py [--quick] [--json out.json] [--only postgres,redis,low_load]

Runs, one after the other (never two at once: client and server share the machine's cores):
1. ``pg_transfers.py``: PostgreSQL ``transfer()`` at 32 and 128 tasks (uniform, hot source) vs pgbench running
   the one-statement transfer at 32 clients, ``transfer_many`` x1,000 vs pgbench set-based batches;
2. ``redis_transfers.py --private-redis``: Redis with 1,000,000 accounts, transfers per Redis-CPU-second vs the
   seed-style script (uniform, half from the treasury), ``transfer()`` at 200 tasks vs redis-py at 50;
3. ``low_load.py``: one task, one call at a time, p50 with batching on vs off, on SQLite, PostgreSQL and Redis.
Each prints its own report; this command then prints one table of every target and writes everything to ``--json``:
the reports' JSON, ``figures`` (every figure beside its in-run baseline, one flat row each: see ``_figures.py``)
and ``targets`` (the table's rows). ``tokenbank bench`` runs this script and charts ``figures``. Targets are
reported, never asserted: the exit status is 0 unless a benchmark failed.
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
from _figures import figure_rows

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "postgres": ["pg_transfers.py"],
    "redis": ["redis_transfers.py", "--private-redis"],
    "low_load": ["low_load.py"],
}


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
    parser.add_argument(
        "--only", type=_names, default=list(BENCHMARKS), help=f"comma-separated subset of {', '.join(BENCHMARKS)}"
    )
    args = parser.parse_args(argv)
    info = environment()
    with tempfile.TemporaryDirectory(prefix="tb-bench-all-") as tmp:
        try:
            results = {name: run_one(BENCHMARKS[name], args.quick, Path(tmp) / f"{name}.json") for name in args.only}
        except subprocess.CalledProcessError as exc:
            print(f"benchmark failed: {' '.join(map(str, exc.cmd))} (exit {exc.returncode})", file=sys.stderr)
            return 1
    figures = figure_rows(results, args.quick)
    rows = [r for r in figures if r["headline"]]
    print("\n=== targets (each figure beside its baseline from the same run)")
    headers = ["figure", "unit", "tokenbank", "baseline", "baseline value", "ratio", "target", "met"]
    table = [
        [r["figure"], r["unit"], r["ours"], r["baseline_name"], r["baseline"], r["ratio"], r["target"], _yes(r["met"])]
        for r in rows
    ]
    print(format_table(headers, table))
    print(f"targets met: {sum(r['met'] for r in rows)} of {len(rows)}")
    if args.json:
        document = {"benchmark": "run_all", "environment": info, "quick": args.quick, "figures": figures}
        write_json(args.json, {**document, "targets": rows, **results})
    return 0


def _names(text: str) -> list[str]:
    """``--only``: known benchmark names, in the suite's order."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - BENCHMARKS.keys())
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    return [name for name in BENCHMARKS if name in names]


def _yes(met: bool | None) -> str:
    return "-" if met is None else "yes" if met else "NO"


if __name__ == "__main__":
    sys.exit(main())
