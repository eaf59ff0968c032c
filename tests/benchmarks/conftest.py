"""One ``tokenbank bench --quick`` run per test session, shared by the tests of its parts: it runs every
benchmark of ``benchmarks/run_all.py`` in its ``--quick`` mode (PostgreSQL, Redis, low load), so the tests of
each script read that run instead of starting the same script again. When the suite runs in several worker
processes, the first one to need the run makes it and the others wait for it and read it."""

from __future__ import annotations

import fcntl
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
def bench_quick(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> BenchRun:
    """The run; tests using it carry the ``postgres`` and ``redis`` markers (the services are checked first)."""
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent  # pytest-xdist: the run's folder above each worker's
    out = shared / "bench_quick" / "charts"
    with (shared / "bench_quick.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        logs = shared / "bench_quick" / "output.json"
        if not logs.exists():
            out.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(
                [sys.executable, "-m", "tokenbank", "bench", "--quick", "--out", str(out)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
            logs.write_text(json.dumps({"stdout": proc.stdout, "stderr": proc.stderr}))
    output = json.loads(logs.read_text())
    raw = json.loads((out / "run_all.json").read_text())
    results = json.loads((out / "results.json").read_text())
    return BenchRun(output["stdout"], output["stderr"], out, raw, results)
