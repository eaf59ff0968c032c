"""The pytest plugin of :mod:`tokenbank.testing` (loaded by ``pytest_plugins = ["tokenbank.testing"]``).

Fixtures: ``token_clock`` (a :class:`ManualClock`), ``token_bank_settings`` (a dict of ``Settings`` fields;
override it in a conftest.py to configure ``token_bank``), ``token_bank`` (an open :func:`memory_bank` on
``token_clock``) and ``token_events`` (an :class:`EventRecorder` on ``token_bank``, watching nothing until
``await token_events.watch("alice")``). The async fixtures need pytest-asyncio (any mode).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tokenbank.bank import TokenBank
from tokenbank.errors import ConfigurationError
from tokenbank.testing.banks import memory_bank
from tokenbank.testing.clocks import ManualClock
from tokenbank.testing.recorder import EventRecorder

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - pytest-asyncio is installed wherever this project's tests run
    raise ConfigurationError(
        "tokenbank.testing's pytest fixtures are async and need pytest-asyncio: pip install pytest-asyncio"
    ) from None


@pytest.fixture
def token_clock() -> ManualClock:
    """The clock of ``token_bank``: frozen at the test's start until ``advance()`` or ``set()``."""
    return ManualClock()


@pytest.fixture
def token_bank_settings() -> dict[str, Any]:
    """``Settings`` fields for ``token_bank`` on top of the test defaults (override this fixture to change them)."""
    return {}


@pytest_asyncio.fixture
async def token_bank(token_clock: ManualClock, token_bank_settings: dict[str, Any]) -> AsyncIterator[TokenBank]:
    """An open bank on a private in-memory SQLite ledger, 1,000,000 TEST in ``treasury``, time from
    ``token_clock``."""
    async with memory_bank(clock=token_clock, **token_bank_settings) as bank:
        yield bank


@pytest_asyncio.fixture
async def token_events(token_bank: TokenBank) -> AsyncIterator[EventRecorder]:
    """Records ``token_bank``'s balance updates of the accounts given to ``await token_events.watch(...)``."""
    async with EventRecorder(token_bank) as recorder:
        yield recorder
