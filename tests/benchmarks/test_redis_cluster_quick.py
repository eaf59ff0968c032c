"""Smoke-runs the Redis Cluster benchmark (``--quick``): it starts its own cluster and server, spreads three tokens
over the three masters, and reports each master's share and the cluster/single ratios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cluster.support import require_binaries

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "redis_cluster.py"


@pytest.mark.redis_cluster
def test_redis_cluster_quick(tmp_path: Path) -> None:
    require_binaries()
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT / "benchmarks")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    assert len(results["cluster"]["nodes"]) == 3 and len(results["single"]["nodes"]) == 1
    for node in results["cluster"]["nodes"].values():
        assert node["evalsha"] > 0 and node["cpu_s"] > 0  # every master served its token
    assert results["cluster"]["transfers"] > 0 and results["single"]["transfers"] > 0
    assert results["summary"]["efficiency_ratio"] > 0 and results["summary"]["largest_share_gap"] < 2 / 3
    assert "ratio Redis-CPU efficiency cluster/single:" in proc.stdout
