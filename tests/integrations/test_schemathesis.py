"""Property-based API tests from the app's own OpenAPI schema, with every schemathesis check: no 5xx, answers
that conform to the schema, requests the schema allows accepted (never a 422), requests it forbids refused.

One app (its lifespan opens one SQLite bank) for the whole module; schemathesis runs it in its own event loop.
Data that fits the schema and data that does not; bounded to ``MAX_EXAMPLES`` generated requests per operation
and mode so that the module runs in about a minute on two cores.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config._checks import (
    NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES,
    POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES,
    NegativeDataRejectionConfig,
    PositiveDataAcceptanceConfig,
)
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.integrations.conftest import API_KEY
from tokenbank import Settings
from tokenbank.integrations.fastapi import create_app

MAX_EXAMPLES = 100
load_all_checks()
ALL_CHECKS = CHECKS.get_all()


DB_PATH = Path(tempfile.gettempdir()) / f"tb-schemathesis-{uuid.uuid4().hex}.db"
APP = create_app(
    Settings(database_url=f"sqlite+aiosqlite:///{DB_PATH}", symbol="FUZZ", initial_supply=10**9, hold_sweep_interval=0),
    API_KEY,
)
# From the app's own schema, without starting the app: its lifespan (which opens the bank) starts with the
# first generated request, in schemathesis' event loop, and is shut down by the fixture below.
schema: BaseSchema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
# A schema-violating body over 64 KiB is refused before it is read: 413, a documented answer of every write.
schema.config.checks.negative_data_rejection = NegativeDataRejectionConfig(
    expected_statuses=[*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]
)
# A write the ledger's state refuses (like the default 409): the account it debits or credits is frozen.
schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
    expected_statuses=[*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, "423"]
)
# The events stream never ends on its own: it is tested in test_events.py instead.
schema = schema.exclude(path_regex=r"/events$")


@pytest.fixture(scope="module", autouse=True)
def _close_bank() -> Iterator[None]:
    yield
    asgi.shutdown_lifespans()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{DB_PATH}{suffix}").unlink(missing_ok=True)


def _beyond_the_schema(path: str, body: object) -> bool:
    """Whether a request breaks a rule JSON Schema cannot state (the schema says it in words, and the answer is a
    documented 422), so it is not held to "schema-valid means accepted": a transfer to oneself, a split that
    breaks its cross-field rules; a freeze of neither debits nor credits; a freeze or stake until a time that is
    not in the future (or a stake until the year 9999); a grant's times or category, a vesting's schedule."""
    if not isinstance(body, dict):
        return False
    if _breaks_a_cross_field_rule(body):
        return True
    if path.endswith("/grants") and _breaks_a_lot_rule(body):
        return True
    if path.endswith("/vestings") and (_breaks_a_lot_rule(body) or _breaks_a_schedule_rule(body)):
        return True
    if path.endswith("/freeze") and not body.get("debits", True) and not body.get("credits", False):
        return True
    until = body.get("until") if path.endswith(("/freeze", "/stakes")) else None
    if isinstance(until, str):
        try:
            moment = datetime.fromisoformat(until).astimezone(UTC)
        except (ValueError, OverflowError):
            return True
        return moment <= datetime.now(UTC) or moment.year == 9999  # a stake unlocks before 9999-12-31
    return False


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case: Any) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {API_KEY}"},
        checks=ALL_CHECKS,
        excluded_checks=[positive_data_acceptance] if _beyond_the_schema(case.path, case.body) else None,
    )


def _breaks_a_cross_field_rule(body: object) -> bool:
    """Sender and receiver differ; a split pays neither the sender nor one receiver twice, and its shares fit."""
    if not isinstance(body, dict) or "from_user_id" not in body:
        return False
    sender = body["from_user_id"]
    if sender == body.get("to_user_id"):
        return True
    legs = body.get("legs")
    if not isinstance(legs, list):
        return False
    try:
        receivers = [leg["to_user_id"] for leg in legs]
        if sender in receivers or sender == body.get("remainder_to") or len(set(receivers)) < len(receivers):
            return True
        shares = [leg["share"] for leg in legs]
        percent = sum(Fraction(Decimal(s[:-1])) for s in shares if s.endswith("%"))
        fixed = sum(Fraction(Decimal(s)) for s in shares if not s.endswith("%"))
        amount = Fraction(Decimal(body["amount"]))
        return bool(percent > 100 or fixed + amount * percent / 100 > amount)
    except (KeyError, TypeError, AttributeError, ArithmeticError, ValueError):
        return False


def _moment(value: object) -> datetime | None:
    return None if not isinstance(value, str) else datetime.fromisoformat(value).astimezone(UTC)


def _breaks_a_lot_rule(body: dict[str, Any]) -> bool:
    """A lot's times lie from 1970 to before 9999; it expires in the future and after it becomes available; its
    category is printable text."""
    try:
        moments = [_moment(body.get(name)) for name in ("expires_at", "available_at", "start")]
    except (ValueError, OverflowError):
        return True
    if any(m is not None and not 1970 <= m.year < 9999 for m in moments):
        return True
    expires_at, available_at, _ = moments
    if expires_at is not None and (expires_at <= datetime.now(UTC) or (available_at and available_at >= expires_at)):
        return True
    category = body.get("category")
    return isinstance(category, str) and not category.isprintable()


def _breaks_a_schedule_rule(body: dict[str, Any]) -> bool:
    """A vesting's interval and cliff fit in its duration, it has at most 1,000 tranches, and each gets a unit."""
    try:
        duration, interval, cliff = body["duration_seconds"], body["interval_seconds"], body.get("cliff_seconds", 0)
        tranches = -(-duration // interval)
        units = Decimal(body["amount"]).scaleb(2)  # the fuzzed token's 2 decimals
        start = _moment(body["start"])
        ends_late = start is not None and start.year + duration / (365.2425 * 86400) >= 9998  # near 9999: ends too late
        return bool(interval > duration or cliff > duration or tranches > 1000 or units < tranches or ends_late)
    except (KeyError, TypeError, ArithmeticError, ValueError):
        return False


def test_every_check_runs() -> None:
    names = set(CHECKS.get_all_names())
    assert {"positive_data_acceptance", "negative_data_rejection", "not_a_server_error"} <= names
    assert len(ALL_CHECKS) == len(names)
