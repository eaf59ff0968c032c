"""The spend window of an account in Redis: a list of ``time:amount`` entries (the debit's time in microseconds) in
time order, written by ops.lua and read by window_spent.lua; the controls themselves are
:meth:`ControlsRecord.to_json` in the ``ctrl`` hash."""

from __future__ import annotations

from datetime import datetime

from tokenbank.storage.redis.codec import to_us


def window_start_us(now: datetime, seconds: int) -> int:
    return to_us(now) - seconds * 1_000_000
