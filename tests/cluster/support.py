"""The test session's own Redis Clusters (never the shared Redis on 6379), started on first use.

``session_cluster()``: 3 masters, no replicas, shared by the behaviour suite and most cluster tests (each test
keeps to its own key prefix). Tests that kill nodes start a cluster of their own with replicas. Both are built
by ``benchmarks/_redis_cluster.py``. Without redis-server and redis-cli the tests skip, or fail under CI=true.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from _redis_cluster import ClusterUnavailable, LocalCluster, LoneRedis, binaries

CI = os.environ.get("CI", "").lower() == "true"

_session: LocalCluster | None = None
_problem: str | None = None


def cluster_problem() -> str | None:
    """None if the session cluster runs (starting it on first call), else why it cannot."""
    global _session, _problem
    if _session is None and _problem is None:
        try:
            binaries()
            _session = LocalCluster(masters=3).start()
        except (ClusterUnavailable, OSError, RuntimeError, TimeoutError) as exc:
            _problem = f"cannot start a local Redis Cluster: {exc}"
    return _problem


def require_binaries() -> None:
    """Skip (fail under CI=true) without redis-server and redis-cli."""
    try:
        binaries()
    except ClusterUnavailable as exc:
        if CI:
            pytest.fail(f"CI=true and {exc}", pytrace=False)
        pytest.skip(str(exc))


def session_cluster() -> LocalCluster:
    """The session's 3-master cluster (started on first call)."""
    problem = cluster_problem()
    if problem is not None:
        if CI:
            pytest.fail(f"CI=true and {problem}", pytrace=False)
        pytest.skip(problem)
    assert _session is not None
    return _session


def session_cluster_url() -> str:
    return session_cluster().url


def stop_session_cluster() -> None:
    """Kill the session cluster and delete its files (called once at the end of the session)."""
    global _session
    if _session is not None:
        _session.stop()
        _session = None


__all__ = ["LocalCluster", "LoneRedis", "require_binaries", "session_cluster", "session_cluster_url"]
