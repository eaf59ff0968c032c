"""Smoke-runs the account controls benchmark (``--quick``): it must finish on the three stores, verify each ledger
and report both rates, both CPU costs per transfer and their ratios (the cost ratio: the median of the neighbouring
runs' ratios)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "account_controls.py"


@pytest.mark.postgres
@pytest.mark.redis
def test_account_controls_quick(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT / "benchmarks")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    for store in ("sqlite", "postgres", "redis"):
        figures = results[store]
        assert figures["plain_tps"] > 0 and figures["limited_tps"] > 0
        assert figures["plain_cpu_us"] > 0 and figures["limited_cpu_us"] > 0
        assert figures["throughput_ratio"] == pytest.approx(figures["plain_tps"] / figures["limited_tps"])
        assert len(figures["pair_cost_ratios"]) == 2  # plain-limited, limited-plain
        assert figures["cost_ratio"] == pytest.approx(statistics.median(figures["pair_cost_ratios"]))
    assert "cost ratio" in proc.stdout
