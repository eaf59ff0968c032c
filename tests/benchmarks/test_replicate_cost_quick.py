"""Smoke-runs the replication cost benchmark (``--quick``): it must finish, find the stores in agreement and report
PostgreSQL's CPU per entry beside the COPY baseline for each batch size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "replicate_cost.py"


@pytest.mark.postgres
@pytest.mark.redis
def test_replicate_cost_quick(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT / "benchmarks")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stores agree afterwards: yes" in proc.stdout.splitlines()
    results = json.loads(out.read_text())
    for batch in ("20", "1000"):
        figures = results["medians"][batch]
        assert figures["sync_pg_us"] > 0 and figures["copy_pg_us"] > 0, figures  # the backends were found
        assert f"ratio sync/COPY PostgreSQL CPU per entry, batches of {int(batch):,}: " in proc.stdout
