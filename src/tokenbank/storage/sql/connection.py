"""Engines: PostgreSQL through asyncpg (async), SQLite through the stdlib driver on one dedicated thread.

SQLite work runs as plain synchronous SQLAlchemy on a single thread per store: each ledger operation is
then one thread hand-off instead of one per statement (aiosqlite's model), and the single thread is also
SQLite's single writer, so writes in one process never contend for the lock.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from tokenbank.errors import ConfigurationError
from tokenbank.settings import Settings

T = TypeVar("T")
SQLITE_BUSY_TIMEOUT_S = 30


def parse_url(settings: Settings) -> URL:
    """The configured database URL; raises ConfigurationError for anything but SQLite or PostgreSQL, and for
    PostgreSQL without its driver (the ``postgres`` extra)."""
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        raise ConfigurationError("DATABASE_URL: not a valid database URL") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"DATABASE_URL: unsupported database {url.get_backend_name()!r} (use sqlite or postgresql)"
        )
    if url.get_backend_name() == "postgresql":
        require_asyncpg()
    return url


def require_asyncpg() -> None:
    """Raise ConfigurationError with the install command when asyncpg (the ``postgres`` extra) is missing."""
    try:
        importlib.import_module("asyncpg")
    except ImportError:
        raise ConfigurationError(
            "DATABASE_URL: PostgreSQL needs the asyncpg driver: pip install 'tokenbank[postgres]'"
        ) from None


def postgres_server_settings(settings: Settings) -> dict[str, str]:
    """What every tokenbank connection to PostgreSQL sets (the schema, JIT off: tb_apply's plans are small)."""
    server_settings = {"application_name": "tokenbank", "jit": "off"}
    if settings.database_schema:
        server_settings["search_path"] = settings.database_schema
    return server_settings


def postgres_dsn(url: URL) -> str:
    """The URL as plain asyncpg takes it (the write pool, LISTEN)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def parse_read_url(settings: Settings) -> URL | None:
    """The configured read replica's URL (``DATABASE_READ_URL``), None without one; ConfigurationError if invalid."""
    if settings.database_read_url is None:
        return None
    try:
        url = make_url(settings.database_read_url)
    except ArgumentError:
        raise ConfigurationError("DATABASE_READ_URL: not a valid database URL") from None
    if url.get_backend_name() != "postgresql":
        raise ConfigurationError("DATABASE_READ_URL: must be a PostgreSQL URL (postgresql+asyncpg://...)")
    require_asyncpg()
    return url


def postgres_engine(url: URL, settings: Settings, *, connect_timeout: float = 10) -> AsyncEngine:
    """The SQLAlchemy pool for reads, migrations and token changes (writes go through pg_writes.py)."""
    server_settings = postgres_server_settings(settings)
    return create_async_engine(
        url.set(drivername="postgresql+asyncpg"),
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_timeout=10,
        connect_args={"server_settings": server_settings, "timeout": connect_timeout, "command_timeout": 60},
    )


class SqliteThread:
    """A synchronous SQLite engine driven from asyncio through one dedicated worker thread."""

    def __init__(self, url: URL) -> None:
        memory = not url.database or url.database == ":memory:"
        kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}}
        if memory:
            # One shared connection, or each pooled connection would see its own empty database.
            kwargs["poolclass"] = StaticPool
        else:
            kwargs["pool_size"] = 1
        self.engine: Engine = sa.create_engine(url.set(drivername="sqlite+pysqlite"), **kwargs)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenbank-sqlite")
        self._closed = False
        self._install_pragmas(memory)

    def _install_pragmas(self, memory: bool) -> None:
        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see _on_begin).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front, so two processes never deadlock upgrading a read lock.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("tb_write") else "BEGIN")

    async def run(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        """Run ``fn`` in one transaction on the worker thread (``write``: BEGIN IMMEDIATE)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, fn, write)

    def _run(self, fn: Callable[[Connection], T], write: bool) -> T:
        with self.engine.connect() as conn:
            if write:
                conn = conn.execution_options(tb_write=True)
            with conn.begin():
                return fn(conn)

    async def close(self) -> None:
        """Dispose of the connections and stop the thread; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self.engine.dispose)
        self._executor.shutdown(wait=True)
