"""Smoke-runs the credit-lots benchmark (``--quick``): it must finish on the three stores, verify each ledger and
report the rates, the CPU costs per transfer with 0, 5 and 50 lots, and the cost ratios of its round."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "lots.py"


@pytest.mark.postgres
@pytest.mark.redis
def test_lots_quick(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT / "benchmarks")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    for store in ("sqlite", "postgres", "redis"):
        figures = results[store]
        for group in ("plain", "lots5", "lots50"):
            assert figures[f"{group}_tps"] > 0 and figures[f"{group}_cpu_us"] > 0
        for group in ("lots5", "lots50"):
            assert len(figures[f"{group}_round_cost_ratios"]) == 1
            assert figures[f"{group}_cost_ratio"] == pytest.approx(
                statistics.median(figures[f"{group}_round_cost_ratios"])
            )
            assert figures[f"{group}_throughput_ratio"] == pytest.approx(figures["plain_tps"] / figures[f"{group}_tps"])
    assert "5 lots cost" in proc.stdout
