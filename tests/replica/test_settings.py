"""DATABASE_READ_URL and TOKEN_REPLICA_WAIT_MS: validated when the settings are built, nothing opened."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import assert_error
from tokenbank import ConfigurationError, Settings
from tokenbank.storage.sql.backend import SqlStorage
from tokenbank.storage.sql.replica import parse_lsn

PG = "postgresql+asyncpg://app@db.internal/ledger"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"database_read_url": "sqlite+aiosqlite:///r.db", "database_url": PG}, "DATABASE_READ_URL: must be a Postgre"),
        ({"database_read_url": "mysql://replica/ledger", "database_url": PG}, "DATABASE_READ_URL: must be a Postgre"),
        ({"database_read_url": "postgresql+asyncpg://replica/ledger"}, "DATABASE_READ_URL: a read replica needs"),
        ({"database_read_url": PG, "replica_wait_ms": -1, "database_url": PG}, "TOKEN_REPLICA_WAIT_MS: "),
    ],
)
def test_bad_replica_settings_are_refused(clean_env: pytest.MonkeyPatch, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(**options)
    assert_error(caught.value, ConfigurationError)
    assert message in caught.value.message


def test_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE_URL", PG)
    clean_env.setenv("DATABASE_READ_URL", "postgresql://replica.internal/ledger")
    clean_env.setenv("TOKEN_REPLICA_WAIT_MS", "50")
    settings = Settings()
    assert (settings.database_read_url, settings.replica_wait_ms) == ("postgresql://replica.internal/ledger", 50)
    store = SqlStorage(settings)  # builds its pools lazily: nothing connects yet
    assert store.replica is not None
    assert store.replica.wait_seconds == 0.05
    assert store.replica.engine.url.port is None and store.replica.engine.url.host == "replica.internal"


def test_no_read_url_means_no_replica(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings().replica_wait_ms == 200
    assert SqlStorage(Settings(database_url=PG)).replica is None


def test_wal_positions_compare_as_postgresql_orders_them() -> None:
    assert parse_lsn("0/0") == 0
    assert parse_lsn("0/3000060") == 0x3000060
    assert parse_lsn("1/0") > parse_lsn("0/FFFFFFFF")
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
