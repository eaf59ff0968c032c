"""Smoke-runs the hybrid benchmark (``--quick``): it must finish, find the stores in agreement and print its ratios."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.hybrid.support import PYTHON, ROOT

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


def test_hybrid_sync_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "hybrid.json"
    proc = subprocess.run(
        [PYTHON, str(ROOT / "benchmarks" / "hybrid_sync.py"), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for start in (
        "ratio hybrid/redis transfers/s: ",
        "ratio hybrid/redis hot-path CPU per transfer: ",
        "ratio drain/sql-transfer entries/s: ",
        "at 50% of redis max: ",
        "hot path (app + Redis)",
    ):
        assert any(line.startswith(start) for line in lines), (start, proc.stdout)  # fmt: skip
    assert "stores agree afterwards: yes" in lines
    data = json.loads(out.read_text())
    hybrid, redis = data["hybrid"], data["redis"]
    assert hybrid["tps"] > 0 and redis["tps"] > 0 and hybrid["entries"] >= hybrid["count"]
    for figure in ("app_us", "redis_us", "hot_us", "worker_us", "pg_backends_us"):
        assert hybrid[figure] > 0, figure  # the worker process and its PostgreSQL backends were found and measured
    paced = data["lag_paced"]
    assert paced["entries"] > 0 and paced["unseen"] == 0 and paced["drained"] and paced["lag_p99_ms"] > 0
    assert 0 < paced["tps"] <= paced["offered_per_s"] * 1.05
    assert paced["offered_per_s"] == pytest.approx(0.5 * redis["tps"], rel=0.01)
    drain = data["drain"]
    assert drain["entries"] >= 12_000 and all(drain[mode]["entries"] > 0 for mode in ("on", "off", "on_other"))
