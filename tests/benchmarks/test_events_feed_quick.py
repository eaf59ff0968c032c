"""Smoke-runs the durable events benchmark (``--quick``): it must read the whole journal through the feed and the
plain drivers on every store, deliver every webhook, and print and write each figure beside its baseline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "events_feed.py"
STORES = ("sqlite", "postgres", "redis")


@pytest.mark.postgres
@pytest.mark.redis
def test_events_feed_quick(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT / "benchmarks")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    for store in STORES:
        feed, delivery = results["feed"][store], results["delivery"][store]
        assert feed["transactions"] == 3_001
        assert feed["ours_tx_per_s"] > 0 and feed["baseline_tx_per_s"] > 0 and feed["ratio"] > 0
        assert delivery["deliveries"] == 200
        assert delivery["ours_per_s"] > 0 and delivery["baseline_per_s"] > 0 and delivery["event_pass_per_s"] > 0
        assert f"ratio feed read {store} tokenbank/{feed['baseline']}: " in proc.stdout
        assert f"ratio webhook delivery {store} dispatcher/plain httpx: " in proc.stdout
    assert "deleted " in proc.stderr  # the Redis keys are gone
