"""Validated public arguments -> the WriteOps the stores apply (all input checking of writes lives here)."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tokenbank.amounts import AmountInput, to_base_units
from tokenbank.clock import SYSTEM_CLOCK, Clock, read_clock, stamps_writes
from tokenbank.errors import InvalidAccountError, InvalidRequestError, blame
from tokenbank.ids import (
    check_account_id,
    check_idempotency_key,
    check_lookup_id,
    check_reason,
    encode_metadata,
    fingerprint,
    new_id,
)
from tokenbank.settings import Settings
from tokenbank.storage.base import OpKind, WriteOp

MAX_HOLD_SECONDS = 366 * 24 * 3600
MAX_PAGE = 1000


class OpBuilder:
    """Builds WriteOps for one token's settings; raises the Invalid*Error of bad input before any store call."""

    def __init__(self, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock
        self._stamps = stamps_writes(clock)

    def now(self) -> datetime:
        """The bank's clock, in UTC."""
        return read_clock(self.clock)

    def stamp(self) -> datetime | None:
        """The time a write carries to the store: None (the store's own time) unless the bank has its own clock."""
        return self.now() if self._stamps else None

    def audit(self, action: str) -> str | None:
        """The audit action to record with a write, unless TOKEN_ENABLE_AUDIT_LOG is off."""
        return action if self.settings.enable_audit_log else None

    def op(self, kind: OpKind, amount: Any, key: Any, metadata: Any, reason: Any, **fields: Any) -> WriteOp:
        # Only a reversal takes its amount from the original transaction.
        with blame("amount"):
            units = None if kind is OpKind.REVERSE else to_base_units(amount, self.settings.decimals)
        with blame("idempotency_key"):
            key = check_idempotency_key(key)
        with blame("metadata"):
            meta = encode_metadata(metadata)
        with blame("reason"):
            reason = check_reason(reason)
        request_hash = None
        if key is not None:
            request_hash = fingerprint(kind.value, units, meta, reason, sorted(fields.items()))
        return WriteOp(
            kind=kind, tx_id=new_id(), amount=units, idempotency_key=key, fingerprint=request_hash, metadata=meta,
            reason=reason, timestamp=self.stamp(), **fields,
        )  # fmt: skip

    def transfer(
        self, from_user_id: Any, to_user_id: Any, amount: Any, key: Any, metadata: Any, reason: Any
    ) -> WriteOp:
        with blame("from_user_id"):
            check_account_id(from_user_id, "sender")
        with blame("to_user_id"):
            check_account_id(to_user_id, "receiver")
        if from_user_id == to_user_id:
            raise InvalidAccountError("cannot transfer to the same account", param="to_user_id")
        return self.op(OpKind.TRANSFER, amount, key, metadata, reason, from_user_id=from_user_id, to_user_id=to_user_id)

    def hold(
        self, from_user_id: Any, to_user_id: Any, amount: Any, expires_in: object, key: Any, metadata: Any, reason: Any
    ) -> WriteOp:
        with blame("expires_in"):
            seconds = hold_seconds(expires_in)
        base = self.transfer(from_user_id, to_user_id, amount, key, metadata, reason)
        return WriteOp(
            kind=OpKind.HOLD, tx_id=base.tx_id, from_user_id=base.from_user_id, to_user_id=base.to_user_id,
            amount=base.amount, idempotency_key=base.idempotency_key,
            fingerprint=None if base.idempotency_key is None else fingerprint("hold", base.fingerprint, str(seconds)),
            metadata=base.metadata, reason=base.reason, hold_id=new_id(), timestamp=base.timestamp,
            expires_at=(base.timestamp or self.now()) + timedelta(seconds=seconds),
        )  # fmt: skip

    def mint(self, to_user_id: Any, amount: Any, key: Any, metadata: Any, reason: Any) -> WriteOp:
        with blame("to_user_id"):
            check_account_id(to_user_id)
        return self.op(
            OpKind.MINT, amount, key, metadata, reason, to_user_id=to_user_id, audit_action=self.audit("mint")
        )

    def burn(self, user_id: Any, amount: Any, key: Any, metadata: Any, reason: Any) -> WriteOp:
        with blame("user_id"):
            check_account_id(user_id)
        return self.op(
            OpKind.BURN, amount, key, metadata, reason, from_user_id=user_id, audit_action=self.audit("burn")
        )

    def initial_mint(self, treasury_account: str, units: int) -> WriteOp:
        """The token's initial supply, minted to the treasury when the token is created (amount in base units)."""
        return WriteOp(
            kind=OpKind.MINT, tx_id=new_id(), to_user_id=treasury_account, amount=units, reason="initial supply",
            audit_action=self.audit("mint"), timestamp=self.stamp(),
        )  # fmt: skip

    def reverse(self, transaction_id: Any, key: Any, metadata: Any, reason: Any) -> WriteOp:
        if not reason:
            raise InvalidRequestError("a reversal needs a reason", param="reason")
        with blame("transaction_id"):
            tx_id = check_lookup_id(transaction_id, "transaction")
        return self.op(
            OpKind.REVERSE, None, key, metadata, reason, reverses_id=tx_id, audit_action=self.audit("reverse")
        )

    def imported(
        self,
        kind: OpKind,
        amount: AmountInput,
        *,
        from_user_id: Any,
        to_user_id: Any,
        tx_id: Any,
        timestamp: Any,
        key: Any,
        metadata: Any,
        reason: Any,
    ) -> WriteOp:
        """A transfer, mint or burn from another ledger, keeping its id (if given) and time, audited as an import."""
        if kind is OpKind.TRANSFER:
            op = self.transfer(from_user_id, to_user_id, amount, key, metadata, reason)
        else:
            with blame("to_user_id" if kind is OpKind.MINT else "from_user_id"):
                user = check_account_id(to_user_id if kind is OpKind.MINT else from_user_id)
            side = {"to_user_id": user} if kind is OpKind.MINT else {"from_user_id": user}
            op = self.op(kind, amount, key, metadata, reason, **side)
        if timestamp is not None and (not isinstance(timestamp, datetime) or timestamp.tzinfo is None):
            raise InvalidRequestError("timestamp must be a timezone-aware datetime", param="timestamp")
        return WriteOp(
            kind=op.kind, tx_id=op.tx_id if tx_id is None else _check_uuid(tx_id), from_user_id=op.from_user_id,
            to_user_id=op.to_user_id, amount=op.amount, idempotency_key=op.idempotency_key,
            fingerprint=op.fingerprint, metadata=op.metadata, reason=op.reason,
            timestamp=timestamp or self.now(), audit_action=self.audit(f"import.{kind.value}"),
        )  # fmt: skip

    def capture(self, hold_id: Any, amount: Any, reason: Any) -> WriteOp:
        with blame("hold_id"):
            hold_id = check_lookup_id(hold_id, "hold")
        with blame("amount"):
            units = None if amount is None else to_base_units(amount, self.settings.decimals)
        with blame("reason"):
            reason = check_reason(reason)
        return WriteOp(
            kind=OpKind.CAPTURE, tx_id=new_id(), hold_id=hold_id, amount=units, reason=reason, timestamp=self.stamp()
        )

    def expire(self, hold_id: str) -> WriteOp:
        """Void a hold the store reported as expired (its id comes from the store)."""
        return WriteOp(kind=OpKind.VOID, tx_id=new_id(), hold_id=hold_id, reason="expired", timestamp=self.stamp())

    def void(self, hold_id: Any, reason: Any) -> WriteOp:
        with blame("hold_id"):
            hold_id = check_lookup_id(hold_id, "hold")
        with blame("reason"):
            reason = check_reason(reason)
        return WriteOp(kind=OpKind.VOID, tx_id=new_id(), hold_id=hold_id, reason=reason, timestamp=self.stamp())


def _check_uuid(value: object) -> str:
    try:
        return str(uuid.UUID(value))  # type: ignore[arg-type]
    except (ValueError, TypeError, AttributeError):
        raise InvalidRequestError(f"imported transaction id must be a UUID, got {value!r}", param="id") from None


def check_page(limit: object, offset: object) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(f"limit must be between 1 and {MAX_PAGE}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidRequestError("offset must be a non-negative integer")


def hold_seconds(expires_in: object) -> float:
    """A hold's lifetime in seconds (a duration may be a float: it is not an amount)."""
    if isinstance(expires_in, timedelta):
        expires_in = expires_in.total_seconds()
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float | Decimal):
        raise InvalidRequestError("expires_in must be seconds or a timedelta")
    seconds = float(expires_in) if not isinstance(expires_in, Decimal) or expires_in.is_finite() else math.nan
    if not 0 < seconds <= MAX_HOLD_SECONDS:  # also refuses NaN
        raise InvalidRequestError(f"expires_in must be more than 0 and at most {MAX_HOLD_SECONDS} seconds")
    return seconds
