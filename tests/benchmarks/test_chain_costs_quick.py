"""Smoke-runs the hash chain cost benchmark (``--quick``): it must finish, prove a transaction on both stores,
report each figure, and find the Lua SHA-256 equal to hashlib's (the script checks it before timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "chain_costs.py"


@pytest.mark.postgres
@pytest.mark.redis
def test_chain_costs_quick(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT / "benchmarks")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    assert results["hash"]["redis_lua_sha256_us"] > results["hash"]["python_hashlib_us"] > 0
    for mode in ("sql", "redis"):
        assert results[mode]["entries"] == 2001 and results[mode]["seal_per_s"] > 0
    assert "sealed 2,001 entries" in proc.stdout
