"""The PostgreSQL benchmark's ``--quick`` run (inside the session's ``tokenbank bench --quick``): it must finish,
verify the ledgers and print (and write as JSON) its figures, ratios and target verdicts: the asyncpg targets (vs
plain asyncpg) and the pgbench targets (vs pgbench on plain tables)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.benchmarks.conftest import BenchRun

WORKLOADS = ("uniform", "hot-source")
TASKS = (1, 8, 32, 128)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_pg_transfers_quick(bench_quick: BenchRun) -> None:
    stdout = bench_quick.stdout
    _check_asyncpg_output(stdout)
    _check_pgbench_output(stdout)
    assert "verify: ok" in stdout

    results = bench_quick.raw["postgres"]
    _check_asyncpg_json(results)
    _check_pgbench_json(results)
    assert results["verify_problems"] == []


def _lines(stdout: str, prefix: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(prefix)]


def _check_asyncpg_output(stdout: str) -> None:
    ratio_lines = _lines(stdout, "ratio tokenbank/asyncpg ")
    assert len(ratio_lines) == 2 * len(TASKS) + 1, stdout  # 2 workloads x 4 concurrencies, and transfer_many
    for workload in WORKLOADS:
        for tasks in TASKS:
            assert any(f" {workload} " in line and f" {tasks} tasks:" in line for line in ratio_lines), workload
    assert any("transfer_many x1000" in line for line in ratio_lines)
    assert "target: tokenbank >= 0.8x asyncpg" in stdout


def _check_pgbench_output(stdout: str) -> None:
    one_statement = _lines(stdout, "ratio tokenbank/pgbench one-statement ")
    assert len(one_statement) == 4, stdout
    for workload in WORKLOADS:
        for tasks in (32, 128):
            assert any(f" {workload} " in line and f" {tasks} tasks:" in line for line in one_statement), workload
    [set_based] = _lines(stdout, "ratio tokenbank/pgbench set-based x1000 transfer_many x1000 ")
    assert " 1 tasks:" in set_based
    targets = _lines(stdout, "target (vs pgbench) ")
    assert [line.split(":")[0] for line in targets] == [
        "target (vs pgbench) uniform",
        "target (vs pgbench) hot-source",
        "target (vs pgbench) transfer_many x1000",
    ], stdout
    assert all(line.endswith((": met", ": NOT met")) for line in targets), targets
    assert ">= 2.0x pgbench one-statement (32 clients)" in targets[0]
    assert ">= 3.0x pgbench one-statement (32 clients)" in targets[1]
    assert ">= 0.7x pgbench set-based x1000 (1 client)" in targets[2]


def _check_asyncpg_json(results: dict[str, Any]) -> None:
    cells = results["cells"]
    assert len(cells) == 2 * len(TASKS) + 1
    assert {(c["workload"], c["tasks"]) for c in cells[:-1]} == {(w, t) for w in WORKLOADS for t in TASKS}
    for cell in cells:
        assert cell["tokenbank"]["count"] > 0
        assert cell["asyncpg"]["count"] > 0
        assert cell["ratio_tokenbank_asyncpg"] > 0
        assert cell["pgbench_tps"] is None or cell["pgbench_tps"] > 0


def _check_pgbench_json(results: dict[str, Any]) -> None:
    comparisons = results["vs_pgbench"]["comparisons"]
    expected = [(w, t, "pgbench one-statement") for w in WORKLOADS for t in (32, 128)]
    expected.append(("transfer_many x1000", 1, "pgbench set-based x1000"))
    assert [(c["workload"], c["tasks"], c["baseline"]) for c in comparisons] == expected
    for c in comparisons:
        assert c["tokenbank_tps"] > 0 and c["baseline_tps"] > 0 and c["ratio"] > 0
        assert c["p50_ms"] > 0 and c["p99_ms"] >= c["p50_ms"]
        assert c["met"] == (c["ratio"] >= c["target"])
    assert [c["target"] for c in comparisons] == [2.0, 2.0, 3.0, 3.0, 0.7]
    assert comparisons[-1]["baseline_clients"] == 1 and comparisons[-1]["baseline_transfers_per_statement"] == 1000
    targets = results["vs_pgbench"]["targets"]
    assert [(t["workload"], t["target"], t["tasks"]) for t in targets] == [
        ("uniform", 2.0, [32, 128]),
        ("hot-source", 3.0, [32, 128]),
        ("transfer_many x1000", 0.7, [1]),
    ]
    assert all(isinstance(t["met"], bool) for t in targets)
