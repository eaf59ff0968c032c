"""Smoke-runs the PostgreSQL benchmark (``--quick``): it must finish, verify the ledger and print its ratios."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "pg_transfers.py"
PG_HOST, PG_PORT = "127.0.0.1", 5432


def _postgres_up() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres() -> None:
    if not _postgres_up():
        message = f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.postgres
def test_pg_transfers_quick(postgres: None, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    ratio_lines = [line for line in proc.stdout.splitlines() if line.startswith("ratio tokenbank/asyncpg ")]
    assert len(ratio_lines) == 7, proc.stdout  # 2 workloads x 3 concurrencies, and transfer_many
    for workload in ("uniform", "hot-source"):
        for tasks in (1, 8, 32):
            assert any(f" {workload} " in line and f"{tasks:>2} tasks:" in line for line in ratio_lines)
    assert any("transfer_many x1000" in line for line in ratio_lines)
    assert "target: tokenbank >= 0.8x asyncpg" in proc.stdout
    assert "verify: ok" in proc.stdout

    results = json.loads(out.read_text())
    assert len(results["cells"]) == 7
    for cell in results["cells"]:
        assert cell["tokenbank"]["count"] > 0
        assert cell["asyncpg"]["count"] > 0
        assert cell["ratio_tokenbank_asyncpg"] > 0
    assert results["verify_problems"] == []
