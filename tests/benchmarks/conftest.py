"""One ``tokenbank bench --quick`` run per test session, shared by the tests of its parts: it runs every
benchmark of ``benchmarks/run_all.py`` in its ``--quick`` mode (PostgreSQL, Redis, low load), so the tests of
each script read that run instead of starting the same script again."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BenchRun:
    stdout: str
    stderr: str
    out: Path
    """Where the charts, ``results.json`` and ``run_all.json`` (every script's own JSON under its name) are."""
    raw: dict[str, Any]
    results: dict[str, Any]


@pytest.fixture(scope="session")
def bench_quick(tmp_path_factory: pytest.TempPathFactory) -> BenchRun:
    """The run; tests using it carry the ``postgres`` and ``redis`` markers (the services are checked first)."""
    out = tmp_path_factory.mktemp("bench") / "charts"
    proc = subprocess.run(
        [sys.executable, "-m", "tokenbank", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    raw = json.loads((out / "run_all.json").read_text())
    results = json.loads((out / "results.json").read_text())
    return BenchRun(proc.stdout, proc.stderr, out, raw, results)
