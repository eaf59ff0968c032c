"""Fixtures of the read-replica tests: one primary and its streaming replica for the whole session (own servers on
spare ports, see cluster.py), and the ``postgres-replica`` backend that the chosen contract tests run on.

Without the PostgreSQL server binaries these tests skip locally and fail under ``CI=true``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest

from tests.backends import Backend, BoundBackend, Scope
from tests.conftest import CI
from tests.replica.cluster import REPLICA_SCHEMA, ReplicatedCluster, find_bin_dir
from tokenbank import Settings, TokenBank
from tokenbank.storage.sql.backend import SqlStorage


@pytest.fixture(scope="session")
def cluster() -> Iterator[ReplicatedCluster]:
    """A primary and a streaming replica of it (``pg_basebackup -R -X stream``), stopped and removed at the end."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        reason = "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) not found under /usr/lib/postgresql"
        if CI:
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    built = ReplicatedCluster(bin_dir)
    try:
        yield built.start()
    finally:
        built.close()


@pytest.fixture
def running(cluster: ReplicatedCluster) -> ReplicatedCluster:
    """The cluster with its replica up and replaying (a test that stopped or paused it may have left it so)."""
    if not cluster.replica_running():
        cluster.start_replica()
    return cluster


def replica_backend(cluster: ReplicatedCluster) -> Backend:
    return Backend(
        "postgres-replica",
        sql=True,
        options=lambda _: {
            "database_url": cluster.primary.url,
            "database_read_url": cluster.replica.url,
            "database_schema": REPLICA_SCHEMA,
        },
    )


def _bound(cluster: ReplicatedCluster, tmp_path: Any) -> BoundBackend:
    return replica_backend(cluster).bind(Scope(tmp_path))


# The contract fixtures, on the replica backend only, for the contract tests test_contract.py imports.
@pytest.fixture
def backend(running: ReplicatedCluster, tmp_path: Any, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    return _bound(running, tmp_path)


@pytest.fixture
def sql_backend(running: ReplicatedCluster, tmp_path: Any, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    return _bound(running, tmp_path)


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def replica_settings(backend: BoundBackend) -> SettingsFactory:
    """Settings on the replicated cluster, this test's own token symbol; keyword overrides win."""
    return lambda **overrides: backend.settings(**{"initial_supply": 1000, **overrides})


@pytest.fixture
async def open_banks() -> AsyncIterator[Callable[[Settings], Awaitable[TokenBank]]]:
    """Open banks on demand; every one is closed at the end of the test."""
    opened: list[TokenBank] = []

    async def open_one(settings: Settings) -> TokenBank:
        bank = TokenBank(settings)
        await bank.open()
        opened.append(bank)
        return bank

    yield open_one
    for bank in reversed(opened):
        await bank.close()


def sql_store(bank: TokenBank) -> SqlStorage:
    store = bank.storage
    assert isinstance(store, SqlStorage)
    return store


async def superuser(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, timeout=10)
