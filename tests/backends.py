"""The backends the behaviour suite runs on, and how one test gets an isolated ledger on each.

Every contract test takes the ``backend`` fixture and runs once per entry of :data:`BACKENDS`. An entry says
which service it needs (a pytest marker of the same name) and which ``Settings`` options point a bank at it;
:class:`Scope` adds what keeps tests apart: a unique token symbol (rows and keys are scoped by symbol), a
unique Redis key prefix, the test's ``tmp_path``, and one PostgreSQL schema per test session.

Adding a backend is one entry, e.g. Redis::

    Backend("redis", services=("redis",), options=lambda scope: {
        "storage_mode": "redis", "redis_url": REDIS_URL, "key_prefix": scope.key_prefix,
    }),
"""

from __future__ import annotations

import atexit
import functools
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from tests.cluster.support import session_cluster_url
from tokenbank import Settings
from tokenbank.storage.sql.migrate import upgrade_to_head

POSTGRES_URL = os.environ.get("TOKENBANK_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TOKENBANK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

SESSION_ID = secrets.token_hex(4)
PG_SCHEMA = f"tbtest_{SESSION_ID}"
"""One schema per test session (dropped at its end); tests inside it are kept apart by their token symbol."""

REDIS_SESSION_PREFIX = "tbt" + secrets.token_hex(3)
"""Every Redis key prefix of this test session starts with it, so the session can delete its keys at the end."""

SERVICES: dict[str, str] = {"postgres": POSTGRES_URL, "redis": REDIS_URL}
"""Service name (also its pytest marker) -> the URL whose host and port must answer."""

LOCAL_SERVICES = ("redis_cluster",)
"""Services the test session starts itself (also pytest markers): ``redis_cluster`` is a 3-master Redis Cluster
on spare ports (tests/cluster/support.py), started on first use and killed at the end of the session."""


def unique(prefix: str = "t") -> str:
    """A fresh identifier, valid as a token symbol (1-16 chars) and as a key prefix."""
    return prefix + secrets.token_hex(6)


def service_address(service: str) -> tuple[str, int]:
    url = urlsplit(SERVICES[service].replace("+asyncpg", ""))
    default_port = {"postgres": 5432, "redis": 6379}[service]
    return url.hostname or "127.0.0.1", url.port or default_port


@functools.cache
def _sqlite_template() -> Path:
    """An empty SQLite ledger file at the schema's head, made once per test process."""
    folder = Path(tempfile.mkdtemp(prefix="tb-template-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "template.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        upgrade_to_head(conn)
    engine.dispose()
    return path


def sqlite_file_url(scope: Scope) -> str:
    """The test's own SQLite file, a copy of the migrated template the first time (migrating every test's new
    file took a tenth of a second each, over a minute of the suite)."""
    path = scope.tmp_path / "tb.db"
    if not path.exists():
        shutil.copyfile(_sqlite_template(), path)
    return f"sqlite+aiosqlite:///{path}"


@dataclass
class Scope:
    """What isolates one test from every other: its directory, its token symbol, its key prefix."""

    tmp_path: Path
    symbol: str = field(default_factory=unique)
    key_prefix: str = field(default_factory=lambda: unique(REDIS_SESSION_PREFIX))


@dataclass(frozen=True)
class Backend:
    """One entry of the registry: a storage configuration the whole contract suite must pass on."""

    name: str
    options: Callable[[Scope], dict[str, Any]]
    services: tuple[str, ...] = ()
    """The servers it needs (each also a pytest marker); every one is probed before a test."""
    sql: bool = False
    """The bank's store is SqlStorage: ``bank.storage.engine`` takes raw SQL (triggers, constraints)."""
    persistent: bool = True
    """A second TokenBank with the same settings sees the same ledger (false for SQLite ``:memory:``)."""

    @property
    def marks(self) -> tuple[pytest.MarkDecorator, ...]:
        return tuple(getattr(pytest.mark, service) for service in self.services)

    def param(self) -> Any:
        return pytest.param(self, id=self.name, marks=self.marks)

    def bind(self, scope: Scope) -> BoundBackend:
        return BoundBackend(self, scope)


@dataclass(frozen=True)
class BoundBackend:
    """A backend for one test: ``settings(**overrides)`` builds an isolated ``Settings``."""

    backend: Backend
    scope: Scope

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def sql(self) -> bool:
        return self.backend.sql

    @property
    def persistent(self) -> bool:
        return self.backend.persistent

    def settings(self, **overrides: Any) -> Settings:
        """Settings on this backend, scoped to this test's token symbol; ``overrides`` win (``symbol=`` too)."""
        base: dict[str, Any] = {
            "symbol": self.scope.symbol,
            "name": "Test Token",
            "hold_sweep_interval": 0,
            **self.backend.options(self.scope),
        }
        return Settings.load(**{**base, **overrides})


BACKENDS: list[Backend] = [
    Backend("sqlite", sql=True, options=lambda scope: {"database_url": sqlite_file_url(scope)}),
    Backend(
        "sqlite-memory", sql=True, persistent=False, options=lambda _: {"database_url": "sqlite+aiosqlite:///:memory:"}
    ),
    Backend(
        "postgres",
        services=("postgres",),
        sql=True,
        options=lambda _: {"database_url": POSTGRES_URL, "database_schema": PG_SCHEMA},
    ),
    Backend(
        "redis",
        services=("redis",),
        options=lambda scope: {"storage_mode": "redis", "redis_url": REDIS_URL, "key_prefix": scope.key_prefix},
    ),
    Backend(
        "redis-cluster",
        services=("redis_cluster",),
        options=lambda scope: {
            "storage_mode": "redis",
            "redis_url": session_cluster_url(),
            "key_prefix": scope.key_prefix,
        },
    ),
    Backend(
        "hybrid",
        services=("redis", "postgres"),
        options=lambda scope: {
            "storage_mode": "hybrid",
            "redis_url": REDIS_URL,
            "key_prefix": scope.key_prefix,
            "database_url": POSTGRES_URL,
            "database_schema": PG_SCHEMA,
        },
    ),
]


def params(predicate: Callable[[Backend], bool] = lambda backend: True) -> list[Any]:
    """``pytest.param`` for every registered backend matching ``predicate`` (id = name, marks = service)."""
    return [backend.param() for backend in BACKENDS if predicate(backend)]


def by_name(*names: str) -> Callable[[Backend], bool]:
    return lambda backend: backend.name in names


def iter_services(node: pytest.Item) -> Iterator[str]:
    """The services a collected test needs, from its markers."""
    for service in (*SERVICES, *LOCAL_SERVICES):
        if node.get_closest_marker(service) is not None:
            yield service
