"""Smoke-runs the read-replica benchmark (``--quick``, on a primary and replica of its own): it must finish, serve
the readers from the replica in one phase and from the primary in the other, keep read-your-writes, verify the
ledger, and print and write its figures and ratios."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.replica.cluster import find_bin_dir

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "replica_reads.py"


def test_replica_reads_quick(tmp_path: Path) -> None:
    if find_bin_dir() is None:
        message = "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) not found"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ratio write rate, reads on replica / reads on primary: " in proc.stdout
    assert "ratio write rate vs writes alone: " in proc.stdout
    assert "write then own history read: with replica p50 " in proc.stdout
    assert "verify: ok" in proc.stdout

    results = json.loads(out.read_text())["results"]
    for phase in ("writes_alone", "writes_reads_on_replica", "writes_reads_on_primary"):
        assert results[phase]["tps"] > 0, phase
    assert results["reads_on_replica"]["count"] > 0
    assert results["reads_on_replica"]["replica_reads"] == results["reads_on_replica"]["count"] + 1  # + the warm-up
    assert results["reads_on_primary"]["replica_reads"] == 0
    served = results["write_then_read_with_replica"]["stats"]
    assert served["reads"] + served["lag_fallbacks"] == results["write_then_read_with_replica"]["pairs"]
    assert results["ratio_replica_vs_primary_reads"] > 0
    assert results["verify_problems"] == []
