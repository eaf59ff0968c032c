"""A bank for tests: a private in-memory SQLite ledger, isolated from the environment, opened and closed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tokenbank.bank import TokenBank
from tokenbank.clock import Clock
from tokenbank.settings import Settings

MEMORY_DATABASE_URL = "sqlite+aiosqlite:///:memory:"

TEST_DEFAULTS: dict[str, Any] = {
    "storage_mode": "sql",
    "database_url": MEMORY_DATABASE_URL,
    "symbol": "TEST",
    "name": "Test Token",
    "initial_supply": 1_000_000,
    "hold_sweep_interval": 0,
}
"""What a test bank starts from (any ``Settings`` field given to :func:`memory_bank` wins): one million tokens in
``treasury``, and no background hold sweeper, so holds expire exactly when a test calls ``expire_holds()``."""


def isolated_settings(**overrides: Any) -> Settings:
    """:data:`TEST_DEFAULTS` with ``overrides``, ignoring the environment. Raises ConfigurationError."""
    return Settings.from_arguments(**{**TEST_DEFAULTS, **overrides})


@asynccontextmanager
async def memory_bank(*, clock: Clock | None = None, **overrides: Any) -> AsyncIterator[TokenBank]:
    """An open bank on its own in-memory SQLite database (see :data:`TEST_DEFAULTS`), closed on exit.

    ``sqlite+aiosqlite:///:memory:`` is one database per connection; the SQL store keeps exactly one
    connection for it (SQLAlchemy's ``StaticPool``, used by the store's single SQLite thread), so the whole
    bank sees one database and nothing else does: two memory banks never share a ledger, and the ledger is
    gone when the bank closes. To share one ledger between two banks (a restart, two processes), pass
    ``database_url=f"sqlite+aiosqlite:///{tmp_path}/tb.db"``. ``overrides`` are ``Settings`` fields;
    ``clock`` is the bank's clock (e.g. a :class:`~tokenbank.testing.ManualClock`). Raises ConfigurationError
    for bad settings."""
    async with TokenBank(isolated_settings(**overrides), clock=clock) as bank:
        yield bank
