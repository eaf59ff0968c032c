"""A clock that moves only when a test says so: holds expire on ``advance()``, not after a ``sleep``."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tokenbank.errors import InvalidRequestError


class ManualClock:
    """Frozen at ``start`` (default: the real time when built) until :meth:`advance` or :meth:`set` moves it.

    Give it to a bank (``TokenBank(settings, clock=clock)``, :func:`~tokenbank.testing.memory_bank` or the
    ``token_clock`` fixture): hold expiry, the expiry sweep and every write's timestamp then follow it. Safe to
    move from any thread (the blocking bank runs on its own)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = datetime.now(UTC) if start is None else _aware(start)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, by: float | Decimal | timedelta) -> datetime:
        """Move forward by ``by`` (seconds or a timedelta); returns the new time. Raises InvalidRequestError
        for a negative or non-finite step (use :meth:`set` to go back)."""
        step = by if isinstance(by, timedelta) else _seconds(by)
        if step < timedelta(0):
            raise InvalidRequestError(f"advance: the step must not be negative, got {step}; use set() to go back")
        with self._lock:
            try:
                self._now += step
            except OverflowError:
                raise InvalidRequestError(f"advance: {step} goes past the last representable time") from None
            return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (a timezone-aware datetime, kept in UTC); returns it. Going back is allowed: a hold
        then stops being expired, and transactions written afterwards carry the earlier time."""
        moved = _aware(when)
        with self._lock:
            self._now = moved
        return moved

    def __repr__(self) -> str:
        return f"ManualClock({self.now().isoformat()})"


def _aware(when: object) -> datetime:
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise InvalidRequestError(f"the clock needs a timezone-aware datetime, got {when!r}")
    return when.astimezone(UTC)


def _seconds(value: object) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InvalidRequestError(f"advance: give seconds or a timedelta, got {value!r}")
    try:
        return timedelta(seconds=float(value))
    except (OverflowError, ValueError):
        raise InvalidRequestError(f"advance: {value!r} seconds is not a usable step") from None
