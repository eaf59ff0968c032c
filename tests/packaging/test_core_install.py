"""The README's first command installs the package without extras and runs ``tokenbank demo``: nothing the CLI
imports on the way may need an extra (redis, asyncpg, fastapi...). A subprocess with those modules made
unimportable runs the demo, so a module-level import of one fails here rather than on a user's machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXTRAS = (
    "redis", "hiredis", "asyncpg", "fastapi", "starlette", "uvicorn", "httpx", "prometheus_client", "opentelemetry",
    "matplotlib", "django", "flask", "playwright",
)  # fmt: skip

RUN_WITHOUT_EXTRAS = f"""
import runpy, sys

for name in {EXTRAS!r}:  # what Python does for a module that is not installed: import fails, find_spec is None
    sys.modules[name] = None
sys.argv = ["tokenbank", "demo", "--accounts", "20", "--operations", "200"]
runpy.run_module("tokenbank", run_name="__main__")
"""


def test_the_demo_runs_on_a_core_install(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_EXTRAS], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "verify: ok" in proc.stdout
