"""The Redis benchmark's ``--quick`` run (inside the session's ``tokenbank bench --quick``): it must finish, verify
the ledger, print its ratios and clean up."""

from __future__ import annotations

import pytest
from tests.benchmarks.conftest import BenchRun


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_redis_transfers_quick(bench_quick: BenchRun) -> None:
    stdout, stderr = bench_quick.stdout, bench_quick.stderr
    ratio_lines = [line for line in stdout.splitlines() if line.startswith("ratio ")]
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
    assert "targets met:" in stdout
    assert "verify: ok" in stdout
    assert "deleted " in stderr  # the run's keys are gone

    results = bench_quick.raw["redis"]
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
