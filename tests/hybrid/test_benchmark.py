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
    assert any(line.startswith("ratio hybrid/redis transfers/s: ") for line in lines), proc.stdout
    assert any(line.startswith("ratio drain/sql-transfer entries/s: ") for line in lines), proc.stdout
    assert "stores agree afterwards: yes" in lines
    data = json.loads(out.read_text())
    assert data["drain"]["entries"] >= 20_000 and data["drain"]["entries_per_s"] > 0
    assert data["sync_lag"]["entries"] > 0 and data["hybrid"]["tps"] > 0 and data["redis"]["tps"] > 0
    assert data["sync_lag_paced"]["entries"] > 0 and data["sync_lag_paced"]["drained"]
    assert 0 < data["paced"]["tps"] <= data["paced"]["offered_per_s"] * 1.05
    assert any(line.startswith("sync lag at 80% of the hybrid max") for line in lines), proc.stdout
