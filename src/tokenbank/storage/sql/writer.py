"""What differs between SQLite and PostgreSQL in :class:`~tokenbank.storage.sql.backend.SqlStorage`, chosen once.

:func:`writer_for` picks :class:`~tokenbank.storage.sql.writer_sqlite.SqliteWriter` (the store's own thread,
writes applied in Python) or :class:`~tokenbank.storage.sql.pg_writes.PgWriter` (an async pool for reads, one
``tb_apply`` call per write batch); the store never asks which it has.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.settings import Settings
from tokenbank.storage.base import OpResult, TxRecord, WriteOp
from tokenbank.storage.sql.connection import parse_url

T = TypeVar("T")


class SqlWriter(ABC):
    """One database's connections, transactions and write path, for one token."""

    token: str
    """The symbol of the token this writer writes."""

    in_flight: int
    """Write batches in flight when the settings do not say."""

    hashes_on_write: bool = False
    """Whether each journal row gets its chain hash in the write's own transaction (else a sealer gives it)."""

    async def open(self) -> None:
        """Connect what the write path needs (after the schema is migrated)."""
        return None

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def run(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        """``fn(connection)`` in one transaction (``write``: it will write; SQLite takes the lock up front)."""

    @abstractmethod
    async def send(self, ops: Sequence[WriteOp], atomic: bool) -> Any:
        """Apply one batch in one call; the raw answer (see :meth:`decode`)."""

    @abstractmethod
    def decode(self, raw: Any) -> list[OpResult]: ...

    @abstractmethod
    async def apply_tokens(self, legs: Sequence[tuple[SqlWriter, WriteOp]]) -> list[OpResult]:
        """Apply each op (two: the legs of an exchange) with the rules of its writer's token, in order, in ONE
        transaction on this writer's database: all or none (a refused op reports its status, the others
        ``BATCH_ABORTED``)."""

    @abstractmethod
    def apply_in(self, conn: Connection, ops: Sequence[WriteOp], atomic: bool) -> list[OpResult]:
        """Apply ops inside a transaction already open on ``conn``."""

    def lock_token_row(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """The query reading the token row, locking it until the transaction ends (SQLite: the write
        transaction holds the database lock already)."""
        return query

    def snapshot(self, conn: Connection) -> None:
        """Make the transaction on ``conn`` one consistent read-only snapshot (SQLite's already is)."""
        return None

    async def listen(self, handler: Callable[[TxRecord], None]) -> Callable[[], Awaitable[None]] | None:
        """Committed transactions from every process, if the database can tell (see Storage.listen)."""
        return None


def writer_for(settings: Settings) -> SqlWriter:
    """The writer for ``settings.database_url``. Raises ConfigurationError for an unsupported database."""
    url = parse_url(settings)
    if url.get_backend_name() == "postgresql":
        from tokenbank.storage.sql.pg_writes import PgWriter  # asyncpg: only for PostgreSQL

        return PgWriter(url, settings)
    from tokenbank.storage.sql.writer_sqlite import SqliteWriter

    return SqliteWriter(url, settings.symbol)
