"""The benchmarks' paced load (``_common.run_paced``): it keeps to its schedule when the operation is fast, and
falls behind it — showing a lower rate, never a slower schedule — when the operation cannot keep up."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from _common import run_paced


def test_fast_operation_runs_at_the_offered_rate() -> None:
    async def instant() -> None:
        return None

    result = asyncio.run(run_paced(instant, 4, 200.0, seconds=0.5))
    assert 90 <= result.count <= 101  # 100 slots in 0.5 s (the last may fall on the deadline)
    assert 180 <= result.tps <= 205


def test_slow_operation_shows_as_a_lower_rate() -> None:
    async def slow() -> None:
        await asyncio.sleep(0.05)

    # 2 tasks x 1 op per 50 ms can do at most ~40/s of the 400/s offered.
    result = asyncio.run(run_paced(slow, 2, 400.0, seconds=0.5))
    assert result.tps <= 45
    assert result.p50_ms >= 45
