"""Smoke-runs the hot-source benchmark (``--quick``): four processes per run on each store, tokenbank and the raw
store alike, every figure reported, and each ledger verified afterwards (the script asserts it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "hot_source.py"


@pytest.mark.postgres
@pytest.mark.redis
def test_hot_source_quick(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT / "benchmarks")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    for store in ("sqlite", "postgres", "redis"):
        figures = results[store]
        for name in ("tokenbank uniform", "tokenbank hot-source", "raw uniform", "raw hot-source"):
            assert figures[name] > 0, (store, name)
        assert figures["tokenbank_hot_ratio"] == pytest.approx(
            figures["tokenbank hot-source"] / figures["tokenbank uniform"]
        )
        assert figures["hot_vs_raw"] == pytest.approx(figures["tokenbank hot-source"] / figures["raw hot-source"])
    assert "hot/uniform" in proc.stdout
