"""PNG charts: ``tokenbank demo --report`` on SQLite, ``tokenbank bench``'s charts and its refusals, and the clear
error when matplotlib is missing. The full ``tokenbank bench --quick`` run is tests/benchmarks/test_run_all_quick.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.backends import REDIS_URL, unique
from tests.cli.conftest import Cli, assert_one_line_error, runner
from tests.pictures import assert_png
from tokenbank.cli import app
from tokenbank.cli.bench import write_charts
from tokenbank.cli.charts import bucket_seconds

NO_MATPLOTLIB = (
    "import sys; sys.modules['matplotlib'] = None; from tokenbank.cli import main; sys.argv[0] = 'tokenbank'; main()"
)


def test_demo_report_writes_the_three_charts(cli: Cli, tmp_path: Path) -> None:
    report = tmp_path / "report" / "demo"  # created, parents included
    result = runner.invoke(app, ["demo", "--quick", "--seed", "11", "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "verify: ok" in result.stdout
    for name in ("balances.png", "volume.png", "top-holders.png"):
        assert_png(report / name, min_width=900, min_height=300)
        assert f"wrote {report / name}" in result.stdout
    assert sorted(path.name for path in report.iterdir()) == ["balances.png", "top-holders.png", "volume.png"]


@pytest.mark.redis
def test_demo_report_in_redis_mode_reads_the_histories(cli: Cli, tmp_path: Path) -> None:
    # No SQL ledger there: the volume chart comes from every account's history, the balances without analytics.
    import redis

    symbol = unique("c")
    report = tmp_path / "report"
    args = ["--mode", "redis", "--symbol", symbol, "demo", "--quick", "--redis-url", REDIS_URL, "--report", str(report)]
    try:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        for name in ("balances.png", "volume.png", "top-holders.png"):
            assert_png(report / name, min_width=900, min_height=300)
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match="{tb:" + symbol + "}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def _without_matplotlib(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("TOKEN_")}
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-c", NO_MATPLOTLIB, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("command", [["demo", "--quick", "--report", "out"], ["bench", "--quick", "--out", "out"]])
def test_without_matplotlib_the_error_names_the_extra_before_anything_runs(tmp_path: Path, command: list[str]) -> None:
    proc = _without_matplotlib(tmp_path, *command)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.strip() == (
        "error [configuration_error]: charts need matplotlib, which is not installed: pip install 'tokenbank[charts]'"
    )
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no demo database, no output folder, no benchmark run


def test_bench_without_a_checkout_says_where_it_looked(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    line = assert_one_line_error(
        cli("bench", "--benchmarks", str(empty), "--out", str(tmp_path / "o")), "benchmarks_not_found"
    )
    assert str(empty) in line and "not installed with the package" in line and "--benchmarks DIR" in line
    assert not (tmp_path / "o").exists()


def test_bench_refuses_an_unknown_benchmark(cli: Cli, tmp_path: Path) -> None:
    line = assert_one_line_error(cli("bench", "--only", "redis,nope", "--out", str(tmp_path / "o")), "invalid_request")
    assert "'nope'" in line and "postgres, redis, low_load" in line
    assert not (tmp_path / "o").exists()


def _row(group: str, figure: str, ours: float, baseline: float, target: str | None, met: bool | None) -> dict[str, Any]:
    return {
        "group": group, "figure": figure, "unit": "transfers/s", "ours": ours, "baseline": baseline,
        "baseline_name": "plain client", "ratio": ours / baseline, "higher_is_better": True, "target": target,
        "met": met, "conditions": "8 tasks; 1,000 accounts", "setup": "1,000 accounts", "headline": target is not None,
    }  # fmt: skip


def test_bench_charts_one_png_per_group_and_every_figure_in_results(tmp_path: Path) -> None:
    figures = [
        _row("postgres", "uniform, 32 tasks", 6_800.0, 4_600.0, ">= 2.0x", False),
        _row("postgres", "hot-source, 32 tasks", 5_600.0, 1_100.0, ">= 3.0x", True),
        _row("postgres", "transfer_many", 8_900.0, 140_000.0, None, None),
        _row("low_load", "sqlite p50 ms", 0.74, 0.75, "<= 1.2x", True),
    ]
    environment = {"started_at": "2026-01-01T00:00:00+00:00", "cpus": 2, "load_average_1m": 0.5, "python": "3.11"}
    written = write_charts({"figures": figures, "environment": environment, "quick": True}, tmp_path)
    assert written == [tmp_path / "results.json", tmp_path / "bench-postgres.png", tmp_path / "bench-low_load.png"]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results == {"environment": environment, "quick": True, "figures": figures}
    wide, _ = assert_png(tmp_path / "bench-postgres.png", min_width=1000, min_height=300)
    narrow, _ = assert_png(tmp_path / "bench-low_load.png", min_width=300, min_height=300)
    assert wide > narrow  # one panel per figure


def test_volume_buckets_fit_the_run() -> None:
    assert bucket_seconds(0.3) == 0.01  # a --quick demo: hundredths of a second
    assert bucket_seconds(7.4) == 0.2
    assert bucket_seconds(50) == 1  # per second
    assert bucket_seconds(3_000) == 60  # per minute
    assert bucket_seconds(10**9) == 86400
