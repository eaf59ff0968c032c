"""Smoke-runs the lot-scaling benchmark (``--quick``): it must finish on the three stores, verify each ledger and
report, per lot count, the wall and CPU time per transfer and their ratios to the 0-lot account and the raw store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "lot_scaling.py"


@pytest.mark.postgres
@pytest.mark.redis
def test_lot_scaling_quick(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT / "benchmarks")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    assert set(results) == {"sqlite", "postgres", "redis"}
    for store, figures in results.items():
        assert set(figures["lots"]) == {"0", "10"}, store
        assert figures["raw_wall_us"] > 0
        base = figures["lots"]["0"]
        for count in ("0", "10"):
            lot = figures["lots"][count]
            assert lot["wall_us"] > 0 and lot["cpu_us"] > 0
            assert lot["cost_ratio"] == pytest.approx(lot["cpu_us"] / base["cpu_us"])
            assert lot["vs_raw"] == pytest.approx(lot["wall_us"] / figures["raw_wall_us"])
    assert "cost vs 0 lots" in proc.stdout
