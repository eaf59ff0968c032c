"""Smoke-runs the Redis benchmark (``--quick``): it must finish, verify the ledger, print its ratios and clean up."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "redis_transfers.py"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def _redis_up() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_server() -> None:
    if not _redis_up():
        message = f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.redis
def test_redis_transfers_quick(redis_server: None, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--quick",
            "--json",
            str(out),
            "--redis-url",
            f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    ratio_lines = [line for line in proc.stdout.splitlines() if line.startswith("ratio ")]
    for tasks in ("1 task", "50 tasks", "200 tasks"):
        for batching in ("on", "off"):
            assert any(f"tokenbank/minimal-script {tasks:>9}, batching {batching}:" in line for line in ratio_lines)
    for label in (
        "tokenbank 200 tasks/seed-style redis-py 50 tasks:",
        "Redis-CPU efficiency tokenbank/seed-style, uniform:",
        "Redis-CPU efficiency tokenbank/seed-style, treasury-50:",
        "low-load p50 batching on/off:",
        "memory tokenbank/seed, balance + leaderboard:",
    ):
        assert any(line.startswith(f"ratio {label}") for line in ratio_lines), label
    assert all(line.rsplit("[", 1)[0].split(":")[-1].strip() != "-" for line in ratio_lines), ratio_lines
    assert "targets met:" in proc.stdout
    assert "verify: ok" in proc.stdout
    assert "deleted " in proc.stderr  # the run's keys are gone

    results = json.loads(out.read_text())
    assert results["verify_problems"] == []
    assert {run["name"] for run in results["runs"]} >= {
        "tokenbank transfer(), batching on",
        "tokenbank transfer(), batching off",
        "redis-py minimal script",
        "redis-py seed-style script",
    }
    for run in results["runs"]:
        assert run["count"] > 0 and run["tps"] > 0, run
    summary = {row["key"]: row for row in results["summary"]}
    for key in ("redis_cpu_uniform", "redis_cpu_treasury_50", "low_load_p50_ms", "memory_balance_leaderboard"):
        assert summary[key]["ratio"] is not None and summary[key]["met"] is not None
    assert 0 < results["memory"]["per_account"]["balance_plus_leaderboard"] < 1_000
