"""Fixtures of the behaviour suite: one backend per registry entry, isolated banks, service checks, profiles."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, settings
from pydantic import AliasChoices

from tests.backends import (
    LOCAL_SERVICES,
    PG_SCHEMA,
    POSTGRES_URL,
    REDIS_SESSION_PREFIX,
    REDIS_URL,
    SERVICES,
    Backend,
    BoundBackend,
    Scope,
    iter_services,
    params,
    service_address,
)
from tests.cluster.support import cluster_problem, stop_session_cluster
from tests.support import open_bank
from tokenbank import Settings, TokenBank

CI = os.environ.get("CI", "").lower() == "true"

# Sized so the whole suite stays within its time budget (about 15 minutes on a 2-core machine, where the stateful
# model runs on 6 backends); HYPOTHESIS_PROFILE=deep digs further when there is time.
_COMMON: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow],
    "database": None,
}
settings.register_profile("dev", max_examples=25, stateful_step_count=30, **_COMMON)
settings.register_profile("ci", max_examples=25, stateful_step_count=30, print_blob=True, **_COMMON)
settings.register_profile("deep", max_examples=200, stateful_step_count=50, print_blob=True, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if CI else "dev"))


# services ------------------------------------------------------------------------------------------------
_service_state: dict[str, str | None] = {}


def _probe(service: str) -> str | None:
    """None if the service answers, else why not (cached for the session)."""
    if service in LOCAL_SERVICES:
        return cluster_problem()
    if service not in _service_state:
        host, port = service_address(service)
        try:
            with socket.create_connection((host, port), timeout=2):
                _service_state[service] = None
        except OSError as exc:
            _service_state[service] = f"{service} at {host}:{port} does not answer ({exc})"
    return _service_state[service]


def require_service(service: str) -> None:
    """Skip the test if ``service`` is down; under CI=true, fail it instead (a CI job must not go green by skipping)."""
    problem = _probe(service)
    if problem is None:
        return
    if CI:
        pytest.fail(f"CI=true and {problem}; start it or unset CI to skip these tests", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(autouse=True)
def _required_services(request: pytest.FixtureRequest) -> None:
    for service in iter_services(request.node):
        require_service(service)


@pytest.fixture(scope="session", autouse=True)
def _stop_local_services() -> Iterator[None]:
    """Kill the Redis Cluster this session started, if it did (tests/cluster/support.py)."""
    yield
    stop_session_cluster()


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_schema() -> Iterator[None]:
    """Drop this session's PostgreSQL schema at the end (only if PostgreSQL was reachable when used)."""
    yield
    if _service_state.get("postgres", "unused") is not None:
        return

    async def drop() -> None:
        import asyncpg

        conn = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""), timeout=10)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{PG_SCHEMA}" CASCADE')
        finally:
            await conn.close()

    # A fresh thread: no event loop of the test session may be running here.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, drop()).result(timeout=60)


@pytest.fixture(scope="session", autouse=True)
def _delete_redis_keys() -> Iterator[None]:
    """Delete every Redis key this session created (all their prefixes start with REDIS_SESSION_PREFIX)."""
    yield
    if _service_state.get("redis", "unused") is not None:
        return
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        batch = []
        for key in client.scan_iter(match="{" + REDIS_SESSION_PREFIX + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
    finally:
        client.close()


# isolation -----------------------------------------------------------------------------------------------
SETTINGS_ENV = sorted(
    choice
    for field in Settings.model_fields.values()
    if isinstance(field.validation_alias, AliasChoices)
    for choice in field.validation_alias.choices
    if isinstance(choice, str) and choice.isupper()
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No TOKEN_* / *_URL variable of the caller's shell leaks into the Settings a test builds."""
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@contextlib.contextmanager
def module_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoundBackend]:
    """A module-scoped fixture's backend (its param) with a directory of its own and the caller's TOKEN_* / *_URL
    variables removed while it is open: for tables of calls that must each change nothing (which the tests check),
    so they can share one bank. Its services are checked first (a module fixture is set up before the
    ``_required_services`` check of its tests, so a service that is down would otherwise error them, not skip them)."""
    for service in request.param.services:
        require_service(service)
    with pytest.MonkeyPatch.context() as env:
        for name in SETTINGS_ENV:
            env.delenv(name, raising=False)
        yield _bind(request, tmp_path_factory.mktemp("shared"))


def _bind(request: pytest.FixtureRequest, tmp_path: Path) -> BoundBackend:
    backend: Backend = request.param
    return backend.bind(Scope(tmp_path))


@pytest.fixture(params=params())
def backend(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    """Every registered backend, bound to this test (unique symbol, own tmp_path)."""
    return _bind(request, tmp_path)


@pytest.fixture(params=params(lambda b: b.sql))
def sql_backend(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    """Backends whose store takes raw SQL through ``bank.storage.engine``."""
    return _bind(request, tmp_path)


@pytest.fixture(params=params(lambda b: b.persistent))
def durable_backend(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    """Backends where a second TokenBank on the same settings sees the same ledger."""
    return _bind(request, tmp_path)


@pytest.fixture
async def bank(backend: BoundBackend) -> AsyncIterator[TokenBank]:
    """An open bank (2 decimals, 1000.00 minted to ``treasury``); its invariants must hold after the test."""
    async with TokenBank(backend.settings(initial_supply=1000)) as opened:
        yield opened
        report = await opened.verify()
        assert report.ok, f"verify() after the test: {report}"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=params())
async def shared_bank(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TokenBank]:
    """Like ``bank``, but one per module and backend (tests using it run in the module's event loop): for tables of
    calls that must each change nothing, which their tests check after every call, so they need not open a bank
    per row."""
    with module_backend(request, tmp_path_factory) as backend:
        async with open_bank(backend, initial_supply=1000) as opened:
            yield opened


__all__ = ["CI", "SERVICES", "require_service"]
