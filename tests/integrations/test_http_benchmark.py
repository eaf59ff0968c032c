"""Smoke-runs the HTTP benchmark (``--quick``): both servers start, both figures and the ratio are printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "http_transfers.py"


@pytest.mark.redis
def test_http_transfers_quick(tmp_path: Path) -> None:
    out = tmp_path / "http.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tokenbank serve, POST /transfers (SQLite)" in proc.stdout
    assert "FastAPI + one Redis INCR (baseline)" in proc.stdout
    assert "ratio tokenbank/baseline req/s:" in proc.stdout
    assert "verify: ok" in proc.stdout
    results = json.loads(out.read_text())
    assert results["tokenbank"]["count"] > 0 and results["baseline"]["count"] > 0
    assert results["ratio"] > 0
