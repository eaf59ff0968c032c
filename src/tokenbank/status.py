"""Outcome codes a store returns per write; the same numbers are used by SQL functions and Lua scripts."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """Per-operation outcome of a store write. ``OK`` and ``REPLAYED`` are the successes."""

    OK = 0
    REPLAYED = 1
    INSUFFICIENT_BALANCE = 2
    SUPPLY_CAP_EXCEEDED = 3
    IDEMPOTENCY_CONFLICT = 4
    HOLD_NOT_FOUND = 5
    HOLD_NOT_PENDING = 6
    HOLD_EXPIRED = 7
    CAPTURE_EXCEEDS_HOLD = 8
    TRANSACTION_NOT_FOUND = 9
    NOT_REVERSIBLE = 10
    ALREADY_REVERSED = 11
    TOKEN_NOT_INITIALIZED = 12
    DUPLICATE_TRANSACTION = 13
    BATCH_ABORTED = 14
    DEBITS_FROZEN = 15
    CREDITS_FROZEN = 16
    ACCOUNT_CLOSED = 17
    MAX_BALANCE_EXCEEDED = 18
    SPEND_LIMIT_EXCEEDED = 19
    ACCOUNT_NOT_EMPTY = 20
    OVERDRAFT_IN_USE = 21
    OVERDRAFT_TOO_LARGE = 22

    @property
    def ok(self) -> bool:
        return self in (Status.OK, Status.REPLAYED)
