"""Helpers for the tests of applications built on tokenbank.

- :func:`memory_bank`: ``async with memory_bank(initial_supply=100) as bank:``, a bank on its own in-memory
  SQLite ledger, isolated from the environment;
- :class:`ManualClock`: ``TokenBank(settings, clock=clock)``, then ``clock.advance(61)`` and
  ``await bank.expire_holds()`` expires a 60-second hold without waiting (on every store);
- :class:`EventRecorder`: balance events into a list, and ``await recorder.wait_for(2)``;
- pytest fixtures ``token_bank``, ``token_clock``, ``token_bank_settings`` and ``token_events``: add
  ``pytest_plugins = ["tokenbank.testing"]`` to the top-level ``conftest.py``.

Importing this module needs no pytest; only the fixtures (:mod:`tokenbank.testing.plugin`, which pytest loads
through ``pytest_plugins`` below) need pytest and pytest-asyncio.
"""

from __future__ import annotations

from tokenbank.testing.banks import MEMORY_DATABASE_URL, TEST_DEFAULTS, isolated_settings, memory_bank
from tokenbank.testing.clocks import ManualClock
from tokenbank.testing.recorder import EventRecorder

pytest_plugins = ["tokenbank.testing.plugin"]
"""Read by pytest when a conftest.py lists ``tokenbank.testing`` in its own ``pytest_plugins``."""

__all__ = ["MEMORY_DATABASE_URL", "TEST_DEFAULTS", "EventRecorder", "ManualClock", "isolated_settings", "memory_bank"]
