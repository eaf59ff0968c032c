"""Smoke-runs the one command behind every performance target (``run_all.py --quick``): every figure with its
baseline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_run_all_quick_prints_every_target(tmp_path: Path) -> None:
    out = tmp_path / "all.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    table = proc.stdout.split("=== targets", 1)[1]
    for figure in (
        "PostgreSQL uniform, 32 tasks", "PostgreSQL uniform, 128 tasks", "PostgreSQL hot-source, 32 tasks",
        "PostgreSQL hot-source, 128 tasks", "PostgreSQL transfer_many x1000", "Redis transfer()/s 200 tasks",
        "Redis transfers per Redis-CPU-s, uniform", "Redis transfers per Redis-CPU-s, treasury-50",
        "sqlite: p50 ms, 1 task", "postgres: p50 ms, 1 task", "redis: p50 ms, 1 task",
    ):  # fmt: skip
        assert figure in table, table
    assert "ratio low-load p50 batching on/off postgres" in proc.stdout
    results = json.loads(out.read_text())
    assert len(results["targets"]) == 11
    for row in results["targets"]:
        assert row["value"] > 0 and row["baseline_value"] > 0
        assert row["ratio"] == pytest.approx(row["value"] / row["baseline_value"], rel=0.02)
        assert isinstance(row["met"], bool)
    assert {"postgres", "redis", "low_load"} <= results.keys()
    assert all(results["low_load"]["verified"].values())
