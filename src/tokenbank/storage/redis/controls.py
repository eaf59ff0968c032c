"""The spend window of an account in Redis: a sorted set of ``tx_id:amount`` members scored by the debit's time
(microseconds), written by ops.lua and read by window_spent.lua; the controls themselves are
:meth:`ControlsRecord.to_json` in the ``ctrl`` hash."""

from __future__ import annotations

from datetime import datetime

from tokenbank.storage.redis.codec import to_us


def window_start_us(now: datetime, seconds: int) -> int:
    return to_us(now) - seconds * 1_000_000
