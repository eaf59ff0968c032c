"""Smoke-runs the hot-source benchmark (``--quick``): four processes per run on each store, tokenbank (on
PostgreSQL with write batching on and off) and the raw store alike, every figure reported, the ledger checked from
the raw tables after each bank run and verified at the end (the script raises when a check fails), and on
PostgreSQL the treasury split into slices for the hot-sliced runs, joined back for the others, and debited through
single slices."""

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
        postgres = store == "postgres"  # the only store that splits a hot account, and runs with batching off too
        workloads = ["uniform", "hot-source"] + (["hot-sliced"] if postgres else [])
        suffixes = ["", " unbatched"] if postgres else [""]
        for workload in workloads:
            assert figures[f"raw {workload}"] > 0, (store, workload)
            for suffix in suffixes:
                assert figures[f"tokenbank {workload}{suffix}"] > 0, (store, workload, suffix)
        for suffix in suffixes:
            key = suffix.replace(" ", "_")
            assert figures["tokenbank_hot_ratio" + key] == pytest.approx(
                figures["tokenbank hot-source" + suffix] / figures["tokenbank uniform" + suffix]
            )
            assert figures["hot_vs_raw" + key] == pytest.approx(
                figures["tokenbank hot-source" + suffix] / figures["raw hot-source"]
            )
        runs = [check["run"] for check in figures["checks"]]
        assert runs == [f"tokenbank {w}{suffix}" for suffix in suffixes for w in workloads]
        assert all(check["ok"] for check in figures["checks"])
    assert "hot/uniform" in proc.stdout and "sliced/uniform" in proc.stdout

    postgres = results["postgres"]
    assert postgres["tokenbank_sliced_ratio"] == pytest.approx(
        postgres["tokenbank hot-sliced"] / postgres["tokenbank uniform"]
    )
    checks = {check["run"]: check for check in postgres["checks"]}
    for run in ("tokenbank hot-sliced", "tokenbank hot-sliced unbatched"):
        # Split as the setting says, the slices holding the treasury's balance (its row none of it).
        assert checks[run]["treasury_slices"] == postgres["slices"] == 8, checks[run]
        assert checks[run]["slices"] > 0 and checks[run]["treasury_row"] == 0, checks[run]
        assert checks[run]["supply"] == checks[run]["accounts"] + checks[run]["slices"], checks[run]
    for run in ("tokenbank uniform unbatched", "tokenbank hot-source unbatched"):
        assert checks[run]["treasury_slices"] == 0 and checks[run]["slices"] == 0, checks[run]  # joined back
    # Debits that went through one slice record no balance after them for the treasury.
    assert (
        checks["tokenbank hot-sliced"]["unknown_balance_after"]
        > checks["tokenbank hot-source"]["unknown_balance_after"]
    )
