"""The PostgreSQL write path: ``tb_apply`` calls on a plain asyncpg pool.

Every write is one autocommit statement, so SQLAlchemy adds nothing to it but CPU: its execute path (greenlet
hand-off, compiled-statement setup, pool checkout) cost ≈0.6 ms of client CPU per call, as much as 16 batched
transfers' own Python work (docs/performance.md). Reads, migrations and ``create_token`` stay on SQLAlchemy.
Imported only for PostgreSQL, so SQLite-only installs need no asyncpg.
"""

from __future__ import annotations

import asyncpg

from tokenbank.errors import StorageUnavailableError
from tokenbank.storage import _translate

_APPLY = "SELECT tb_apply($1, $2::jsonb, $3)::text"


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """tb_apply in autocommit leaves no session state; asyncpg's default reset would cost a round trip per call."""


class PgWritePool:
    """A lazily filled asyncpg pool (connections open on first use) sending ``tb_apply`` and returning its
    JSON answer as text. Driver errors come out as StorageError / StorageUnavailableError with the driver
    error as ``__cause__`` (its SQLSTATE decides retries)."""

    def __init__(self, dsn: str, server_settings: dict[str, str], size: int) -> None:
        self._dsn = dsn
        self._server_settings = server_settings
        self._size = size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=0,
            max_size=self._size,
            reset=_no_reset,
            timeout=10,
            command_timeout=60,
            server_settings=self._server_settings,
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def apply(self, token: str, ops_json: str, atomic: bool) -> str:
        if self._pool is None:
            raise StorageUnavailableError("the PostgreSQL write pool is closed")
        try:
            async with self._pool.acquire(timeout=10) as conn:
                answer = await conn.fetchval(_APPLY, token, ops_json, atomic)
        except asyncpg.InterfaceError as exc:  # e.g. the connection closed under the call
            raise StorageUnavailableError(f"database connection lost: {type(exc).__name__}") from exc
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            raise _translate.SQL_ERRORS.translate(exc) from exc
        assert isinstance(answer, str)
        return answer
