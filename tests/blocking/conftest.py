"""Fixtures of the blocking API tests: a blocking bank on SQLite (file) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends import Backend, BoundBackend, Scope, by_name, params
from tokenbank.blocking import TokenBank


@pytest.fixture(params=params(by_name("sqlite", "postgres")))
def sync_backend(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    backend: Backend = request.param
    return backend.bind(Scope(tmp_path))


@pytest.fixture
def sync_bank(sync_backend: BoundBackend) -> Iterator[TokenBank]:
    """An open blocking bank with 1000.00 in the treasury; its invariants must hold after the test."""
    with TokenBank(sync_backend.settings(initial_supply=1000)) as bank:
        yield bank
        report = bank.verify()
        assert report.ok, f"verify(): {report}"
