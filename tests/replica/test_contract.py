"""The contract tests of the reads a replica serves (history, leaderboard, balance_at, analytics), run on the
``postgres-replica`` backend: the primary writes, the replica answers the reads (see conftest.py).

Only this subset runs there, not the whole contract suite: the other operations never touch the replica.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.contract.test_history import (
    test_filters_combine_with_pages,
    test_history_is_newest_first_and_covers_both_sides,
    test_last_page_boundary,
    test_pages_cover_everything_exactly_once_while_new_transfers_arrive,
    test_time_filters,
    test_type_filter,
)
from tests.contract.test_leaderboard_fresh import (
    test_concurrent_writers_each_read_their_own_write,
    test_every_write_is_on_the_board_at_once,
)
from tests.contract.test_reversals import test_get_balance_at_past_moments
from tests.replica.cluster import ReplicatedCluster
from tests.replica.conftest import superuser
from tests.services.test_analytics import (
    ledger,
    test_active_accounts,
    test_balance_distribution,
    test_daily_volume_and_types,
    test_distribution_with_zeros_and_everyone,
    test_hourly_volume,
    test_supply_over_time,
    test_top_senders_and_receivers,
)

PROBE_COMMITS = 2
"""Transactions one probe below adds to the replica's count (asyncpg's connection setup and the query)."""

__all__ = [
    "ledger",
    "test_active_accounts",
    "test_balance_distribution",
    "test_concurrent_writers_each_read_their_own_write",
    "test_daily_volume_and_types",
    "test_distribution_with_zeros_and_everyone",
    "test_every_write_is_on_the_board_at_once",
    "test_filters_combine_with_pages",
    "test_get_balance_at_past_moments",
    "test_history_is_newest_first_and_covers_both_sides",
    "test_hourly_volume",
    "test_last_page_boundary",
    "test_pages_cover_everything_exactly_once_while_new_transfers_arrive",
    "test_supply_over_time",
    "test_time_filters",
    "test_top_senders_and_receivers",
    "test_type_filter",
]


async def _replica_commits(cluster: ReplicatedCluster) -> int:
    conn = await superuser(cluster.replica.dsn)
    try:
        return int(await conn.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'"))
    finally:
        await conn.close()


@pytest.fixture(autouse=True)
async def _reads_reach_the_replica(running: ReplicatedCluster) -> AsyncIterator[None]:
    """Each test's reads really ran on the replica: its transaction count grew by more than the probes' own."""
    before = await _replica_commits(running)
    yield
    # The banks are closed: their replica sessions ended, which reports their statistics (shortly after).
    probes, deadline = 1, time.monotonic() + 5
    while (after := await _replica_commits(running)) <= before + PROBE_COMMITS * probes:
        assert time.monotonic() < deadline, f"no read reached the replica ({after - before} transactions)"
        probes += 1
        await asyncio.sleep(0.05)
