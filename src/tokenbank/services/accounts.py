"""Account controls: freeze and unfreeze, close, limits, and the account as a whole (:class:`AccountInfo`).

The store enforces every control inside the write itself (never a read in Python followed by a write), so
concurrent writes from any number of processes obey them exactly; this service validates a change and hands it
to the store, which orders it with the account's writes and audits it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from tokenbank.amounts import AmountInput, from_base_units, to_base_units, to_decimal
from tokenbank.errors import InvalidAmountError, InvalidRequestError, blame, error_for
from tokenbank.ids import check_account_id, check_reason
from tokenbank.models import AccountInfo, Freeze, SpendLimit
from tokenbank.status import Status
from tokenbank.storage.base import CONTROL_ACTIONS, ControlsRecord

if TYPE_CHECKING:
    from tokenbank.ledger import Ledger

MAX_WINDOW_SECONDS = 366 * 24 * 3600


class AccountsService:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def freeze(
        self, user_id: str, *, debits: bool = True, credits: bool = False, reason: str, until: datetime | None = None
    ) -> AccountInfo:
        """Stop the account's debits, credits or both (replacing any freeze), until ``until`` or :meth:`unfreeze`.
        Raises InvalidRequestError (no direction, no reason, ``until`` not in the future), AccountClosedError."""
        if not isinstance(debits, bool) or not isinstance(credits, bool) or not (debits or credits):
            raise InvalidRequestError("freeze debits, credits or both", param="debits")
        with blame("reason"):
            if not check_reason(reason):
                raise InvalidRequestError("a freeze needs a reason")
        if until is not None and (not isinstance(until, datetime) or until.tzinfo is None):
            raise InvalidRequestError("until must be a timezone-aware datetime", param="until")
        if until is not None:
            try:
                until = until.astimezone(UTC)
            except OverflowError:
                raise InvalidRequestError("until must be at most 9999-12-31 in UTC", param="until") from None
            if until <= self._ledger.ops.now():
                raise InvalidRequestError("until must be in the future", param="until")
        change = ControlsRecord(debits_frozen=debits, credits_frozen=credits, frozen_until=until, freeze_reason=reason)
        return await self._change(user_id, change, ("freeze",), "freeze")

    async def unfreeze(self, user_id: str) -> AccountInfo:
        """End the account's freeze (nothing happens if it has none). Raises AccountClosedError."""
        return await self._change(user_id, ControlsRecord(), ("freeze",), "unfreeze")

    async def close_account(self, user_id: str) -> AccountInfo:
        """Close the account for good: every later write to or from it is refused. It must hold nothing (no
        balance, no held funds). Raises TransactionStateError (it holds funds), AccountClosedError."""
        return await self._change(user_id, ControlsRecord(closed=True), ("close",), "close")

    async def set_limits(
        self,
        user_id: str,
        *,
        max_balance: AmountInput | None = None,
        spend_per_window: tuple[AmountInput, int | float | timedelta] | None = None,
        overdraft: AmountInput | None = None,
    ) -> AccountInfo:
        """Set the account's limits, replacing the ones it had (None: no such limit). ``max_balance``: credits
        that would take the spendable balance above it are refused. ``spend_per_window=(amount, seconds)``: the
        account's transfers, burns and holds in any rolling window of ``seconds`` add up to at most ``amount``.
        ``overdraft``: debits may take the balance down to minus this (0 or None: not below zero); a change that
        would leave the account owing more than its overdraft allows is refused (TransactionStateError).
        Raises InvalidAmountError, InvalidRequestError, AccountClosedError, TransactionStateError."""
        decimals = self._ledger.decimals
        maximum = None
        if max_balance is not None:
            with blame("max_balance"):
                maximum = to_base_units(max_balance, decimals)
        window_amount = window_seconds = None
        if spend_per_window is not None:
            if not isinstance(spend_per_window, Sequence) or len(spend_per_window) != 2:
                raise InvalidRequestError("spend_per_window must be (amount, seconds)", param="spend_per_window")
            with blame("spend_per_window"):
                window_amount = to_base_units(spend_per_window[0], decimals)
            window_seconds = _window_seconds(spend_per_window[1])
        floor = None if overdraft is None else _overdraft(overdraft, decimals)
        change = ControlsRecord(max_balance=maximum, window_amount=window_amount, window_seconds=window_seconds,
                                overdraft=floor)  # fmt: skip
        return await self._change(user_id, change, ("limits",), "limits")

    async def get_account(self, user_id: str) -> AccountInfo:
        """The account's balances and controls. Raises InvalidAccountError, TokenNotInitializedError."""
        with blame("user_id"):
            check_account_id(user_id)
        ledger = self._ledger
        await ledger.token_record()
        now = ledger.ops.now()
        controls = await ledger.storage.get_controls(user_id, now) or ControlsRecord()
        balances = await ledger.storage.get_balances([user_id])
        held = await ledger.storage.get_held(user_id)
        units = ledger.decimals
        frozen = None
        if (controls.debits_frozen or controls.credits_frozen) and (
            controls.frozen_until is None or controls.frozen_until > now
        ):
            frozen = Freeze(controls.debits_frozen, controls.credits_frozen, controls.freeze_reason,
                            controls.frozen_until)  # fmt: skip
        limit = None
        if controls.window_amount is not None and controls.window_seconds is not None:
            limit = SpendLimit(from_base_units(controls.window_amount, units), controls.window_seconds)
        return AccountInfo(
            user_id=user_id, balance=from_base_units(balances[user_id], units), held=from_base_units(held, units),
            frozen=frozen, closed=controls.closed,
            max_balance=None if controls.max_balance is None else from_base_units(controls.max_balance, units),
            spend_limit=limit, spent_in_window=from_base_units(controls.window_spent, units),
            overdraft=None if controls.overdraft is None else from_base_units(controls.overdraft, units),
        )  # fmt: skip

    async def _change(self, user_id: str, change: ControlsRecord, groups: Sequence[str], kind: str) -> AccountInfo:
        with blame("user_id"):
            check_account_id(user_id)
        await self._ledger.token_record()
        status = await self._ledger.storage.set_controls(
            user_id, change, groups, CONTROL_ACTIONS[kind], self._ledger.ops.stamp()
        )
        if status is not Status.OK:
            param = "overdraft" if status in (Status.OVERDRAFT_IN_USE, Status.OVERDRAFT_TOO_LARGE) else "user_id"
            raise error_for(status, f"account {user_id!r}", param=param)
        return await self.get_account(user_id)


def _overdraft(value: AmountInput, decimals: int) -> int | None:
    """The overdraft limit in base units: validated as ``max_balance``, except that 0 means none (as None)."""
    with blame("overdraft"):
        try:
            return to_base_units(value, decimals)
        except InvalidAmountError:
            if _plain_zero(value):
                return None
            raise


def _plain_zero(value: object) -> bool:
    if type(value) is int:
        return value == 0
    if not isinstance(value, str | Decimal):
        return False
    try:
        number = to_decimal(value)
    except InvalidAmountError:
        return False
    return number.is_finite() and number == 0 and not number.is_signed()


def _window_seconds(value: object) -> int:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value != int(value):
        raise InvalidRequestError("the window must be a whole number of seconds", param="spend_per_window")
    if not 1 <= value <= MAX_WINDOW_SECONDS:
        raise InvalidRequestError(
            f"the window must be 1 to {MAX_WINDOW_SECONDS} seconds long", param="spend_per_window"
        )
    return int(value)
