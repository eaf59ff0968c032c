"""``tokenbank bench``: run the benchmark suite of a source checkout, then chart every figure beside its baseline.

The suite stays in ``benchmarks/`` (one implementation: ``run_all.py`` and the scripts it runs); it drives
PostgreSQL, Redis, pgbench and redis-benchmark and is not installed with the package, so this command runs it
from the checkout it finds and says so when there is none.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from tokenbank.cli import charts
from tokenbank.cli.runtime import CliState, state_of

SUITE = ("postgres", "redis", "low_load")
TITLES = {
    "postgres": "PostgreSQL: tokenbank transfer() vs pgbench on plain tables",
    "postgres-asyncpg": "PostgreSQL: tokenbank vs plain asyncpg sending the same call",
    "redis": "Redis: tokenbank vs redis-py and redis-benchmark",
    "low_load": "Low load: one task, p50 latency, batching on vs off",
}
CHECKOUT = Path(__file__).resolve().parents[3]  # the repository root when the package runs from its src/ folder


def bench(
    ctx: typer.Context,
    quick: Annotated[
        bool, typer.Option("--quick", help="Every benchmark in its --quick mode (about a minute).")
    ] = False,
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG charts and the results JSON.")] = Path(
        "bench-results"
    ),
    only: Annotated[
        str | None, typer.Option("--only", help=f"Comma-separated subset of {', '.join(SUITE)}.", show_default=False)
    ] = None,
    benchmarks: Annotated[
        Path | None,
        typer.Option(
            "--benchmarks",
            help="The checkout's benchmarks/ folder (default: ./benchmarks, else the one beside the package).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run benchmarks/run_all.py of a source checkout and chart each figure beside its in-run baseline.

    Writes OUT/bench-<group>.png (one per benchmark: a bar for tokenbank beside its baseline, the ratio above),
    OUT/results.json (every figure: ours, baseline, ratio, unit, conditions) and OUT/run_all.json (the full
    reports). Needs PostgreSQL and Redis as the benchmarks do, and matplotlib (pip install 'tokenbank\\[charts]')."""
    state = state_of(ctx)
    with state.handled():
        charts.require()
    suite = _suite(state, benchmarks)
    names = _names(state, only)
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "run_all.json"
    argv = [sys.executable, str(suite / "run_all.py"), "--json", str(raw), "--only", ",".join(names)]
    state.err.print(
        f"running {suite / 'run_all.py'}{' --quick' if quick else ''} --only {','.join(names)}", soft_wrap=True
    )
    # Our own interpreter on the checkout's script, arguments built here: nothing from outside reaches a shell.
    command = [*argv, *(["--quick"] if quick else [])]
    code = subprocess.run(command, cwd=suite.parent, check=False).returncode  # noqa: S603
    if code != 0:
        state.fail("benchmark_failed", f"{suite / 'run_all.py'} exited with status {code}; its output is above")
    with state.handled():
        written = write_charts(json.loads(raw.read_text()), out)
    for path in written:
        state.out.print(f"wrote {path}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(bench)


def _suite(state: CliState, given: Path | None) -> Path:
    """The benchmarks/ folder holding run_all.py: the one given, ./benchmarks, or the one beside the package."""
    candidates = [given] if given is not None else [Path.cwd() / "benchmarks", CHECKOUT / "benchmarks"]
    for folder in candidates:
        if (folder / "run_all.py").is_file():
            return folder.resolve()
    where = " or ".join(str(folder) for folder in candidates)
    state.fail(
        "benchmarks_not_found",
        f"no benchmarks/run_all.py in {where}. The benchmarks are not installed with the package: clone "
        "https://github.com/tokenbank/tokenbank and run 'tokenbank bench' in the checkout, or pass --benchmarks DIR",
    )


def _names(state: CliState, only: str | None) -> list[str]:
    if only is None:
        return list(SUITE)
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in SUITE]
    if unknown or not names:
        state.fail(
            "invalid_request", f"--only: unknown benchmark {', '.join(unknown)!r}; choose from {', '.join(SUITE)}"
        )
    return [name for name in SUITE if name in names]


def write_charts(report: Mapping[str, Any], out: Path) -> list[Path]:
    """results.json (every figure with its environment) and one PNG per benchmark group. Raises ConfigurationError
    without matplotlib."""
    figures: Sequence[Mapping[str, Any]] = report["figures"]
    environment = report["environment"]
    results = out / "results.json"
    document = {"environment": environment, "quick": report["quick"], "figures": figures}
    results.write_text(json.dumps(document, indent=2) + "\n")
    written = [results]
    for group in dict.fromkeys(row["group"] for row in figures):
        rows = [row for row in figures if row["group"] == group]
        setups = "; ".join(dict.fromkeys(str(row["setup"]) for row in rows))
        footer = (
            f"Measured {environment['started_at']} on {environment['cpus']} CPUs (client and servers share them), "
            f"load average {environment['load_average_1m']:.2f} at the start, Python {environment['python']}; "
            f"{setups}. Each baseline was measured in the same run."
        )
        written.append(charts.bench_chart(TITLES.get(group, group), rows, footer, out / f"bench-{group}.png"))
    return written
