"""The spend window of an account in Redis: a sorted set of ``tx_id:amount`` members scored by the debit's time
(microseconds), written by ops.lua; the controls themselves are :meth:`ControlsRecord.to_json` in the ``ctrl`` hash."""

from __future__ import annotations

from datetime import datetime

from tokenbank.storage.redis.codec import to_us


def spent_in_window(members: list[str]) -> int:
    """The sum of a spend set's members (``tx_id:amount``) that a window holds."""
    return sum(int(member.rsplit(":", 1)[1]) for member in members)


def window_start_us(now: datetime, seconds: int) -> int:
    return to_us(now) - seconds * 1_000_000
