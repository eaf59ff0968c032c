"""Building the async engine: SQLite pragmas and write serialisation, PostgreSQL pool and schema."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from tokenbank.errors import ConfigurationError
from tokenbank.settings import Settings

SQLITE_BUSY_TIMEOUT_S = 30


def create_engine(settings: Settings) -> AsyncEngine:
    """An engine for ``settings.database_url``; raises ConfigurationError for unsupported URLs."""
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        raise ConfigurationError("DATABASE_URL: not a valid database URL") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url.set(drivername="sqlite+aiosqlite"))
    if backend == "postgresql":
        return _postgres_engine(url.set(drivername="postgresql+asyncpg"), settings)
    raise ConfigurationError(f"DATABASE_URL: unsupported database {backend!r} (use sqlite or postgresql)")


def is_memory_sqlite(engine: AsyncEngine) -> bool:
    database = engine.url.database
    return engine.dialect.name == "sqlite" and (not database or database == ":memory:")


def _sqlite_engine(url: Any) -> AsyncEngine:
    memory = not url.database or url.database == ":memory:"
    kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    if memory:
        # One shared connection, or each pooled connection would see its own empty database.
        kwargs["poolclass"] = StaticPool
    engine = create_async_engine(url, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front, so two processes never deadlock upgrading a read lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("tb_write") else "BEGIN")

    return engine


def _postgres_engine(url: Any, settings: Settings) -> AsyncEngine:
    server_settings = {"application_name": "tokenbank", "jit": "off"}
    if settings.database_schema:
        server_settings["search_path"] = settings.database_schema
    return create_async_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_pre_ping=False,
        pool_timeout=10,
        connect_args={"server_settings": server_settings, "timeout": 10, "command_timeout": 60},
    )
