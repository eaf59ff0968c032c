"""Where the bank gets "now": the real UTC clock by default, a controllable one in tests.

A bank asks its clock for the time of every decision it makes in Python: a hold's ``expires_at``
(``now + expires_in``), the moment the expiry sweep compares with (:meth:`TokenBank.expire_holds`), and an
imported transaction's default time. With the default :data:`SYSTEM_CLOCK` the stores stamp transactions with their
own time (SQLite: the writer's ``datetime.now``, PostgreSQL: ``clock_timestamp()``, Redis: ``TIME``), which every
process sharing them agrees on. Any other clock also stamps every write with its time, so the stores stamp
transactions, and judge whether a capture comes after the hold's expiry, by the clock rather than their own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from tokenbank.errors import ConfigurationError


@runtime_checkable
class Clock(Protocol):
    """Anything with ``now()`` returning a timezone-aware datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock, in UTC; the stores keep stamping writes with their own time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


def read_clock(clock: Clock) -> datetime:
    """The clock's time in UTC. Raises ConfigurationError for a clock that answers a naive datetime (its zone
    would be a guess)."""
    now = clock.now()
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ConfigurationError(f"clock {clock!r}: now() must return a timezone-aware datetime, got {now!r}")
    return now.astimezone(UTC)


def stamps_writes(clock: Clock) -> bool:
    """Whether writes carry the clock's time to the store (every clock but the real one)."""
    return not isinstance(clock, SystemClock)


__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "read_clock", "stamps_writes"]
