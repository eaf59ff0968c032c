"""Smoke-runs the one command behind every performance target, through the CLI that charts it:
``tokenbank bench --quick`` runs ``benchmarks/run_all.py --quick`` (every figure with its baseline, printed as one
table), then writes a PNG per benchmark and results.json with ours / baseline / ratio for every figure."""

from __future__ import annotations

import pytest
from tests.benchmarks.conftest import BenchRun
from tests.pictures import assert_png

HEADLINES = (
    "PostgreSQL uniform, 32 tasks", "PostgreSQL uniform, 128 tasks", "PostgreSQL hot-source, 32 tasks",
    "PostgreSQL hot-source, 128 tasks", "PostgreSQL transfer_many x1000", "Redis transfer()/s 200 tasks",
    "Redis transfers per Redis-CPU-s, uniform", "Redis transfers per Redis-CPU-s, treasury-50",
    "sqlite: p50 ms, 1 task", "postgres: p50 ms, 1 task", "redis: p50 ms, 1 task",
)  # fmt: skip
GROUPS = ("postgres", "postgres-asyncpg", "redis", "low_load")


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_bench_quick_prints_every_target_and_charts_every_figure(bench_quick: BenchRun) -> None:
    out, stdout = bench_quick.out, bench_quick.stdout
    table = stdout.split("=== targets", 1)[1]
    for figure in HEADLINES:
        assert figure in table, table
    assert "ratio low-load p50 batching on/off postgres" in stdout

    raw = bench_quick.raw
    assert raw["quick"] is True
    assert len(raw["targets"]) == len(HEADLINES)
    assert {"postgres", "redis", "low_load"} <= raw.keys()
    assert all(raw["low_load"]["verified"].values())

    results = bench_quick.results
    figures = results["figures"]
    assert {row["group"] for row in figures} == set(GROUPS)
    assert len(figures) > len(HEADLINES)  # the informational figures are charted too
    for row in figures:
        assert row["ours"] > 0 and row["baseline"] > 0 and row["baseline_name"], row
        assert row["ratio"] == pytest.approx(row["ours"] / row["baseline"], rel=0.02, abs=0.0005), row  # 3 decimals
        assert row["unit"] and "(--quick)" in row["conditions"], row
        assert row["met"] is None if row["target"] is None else isinstance(row["met"], bool), row
    assert results["environment"]["cpus"] >= 1

    for group in GROUPS:
        assert_png(out / f"bench-{group}.png", min_width=800, min_height=400)
        assert f"wrote {out / f'bench-{group}.png'}" in stdout
