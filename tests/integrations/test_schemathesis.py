"""Property-based API tests from the app's own OpenAPI schema: no 5xx, and every answer conforms to the schema.

One app (its lifespan opens one SQLite bank) for the whole module; schemathesis runs it in its own event loop.
Bounded: at most ``MAX_EXAMPLES`` generated requests per operation.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integrations.conftest import API_KEY
from tokenbank import Settings
from tokenbank.integrations.fastapi import create_app

MAX_EXAMPLES = 25
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


DB_PATH = Path(tempfile.gettempdir()) / f"tb-schemathesis-{uuid.uuid4().hex}.db"
APP = create_app(
    Settings(database_url=f"sqlite+aiosqlite:///{DB_PATH}", symbol="FUZZ", initial_supply=10**9, hold_sweep_interval=0),
    API_KEY,
)
# From the app's own schema, without starting the app: its lifespan (which opens the bank) starts with the
# first generated request, in schemathesis' event loop, and is shut down by the fixture below.
schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP
# The events stream never ends on its own: it is tested in test_events.py instead.
schema = schema.exclude(path_regex=r"/events$")


@pytest.fixture(scope="module", autouse=True)
def _close_bank() -> Iterator[None]:
    yield
    asgi.shutdown_lifespans()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{DB_PATH}{suffix}").unlink(missing_ok=True)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case: Any) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {API_KEY}"}, checks=CHECKS)
