"""Staking: tokens locked by their owner until a date, then given back with a reward minted on top.

A stake is a hold of the owner's tokens for the staking pool account (held out of the balance, counted in the
supply as every hold is) whose expiry lies beyond any date a sweep reaches, so it ends only by
:meth:`StakingService.unstake`: one atomic store call that voids the hold and mints the reward, within the supply
cap. The stake's terms (unlock time,
reward) travel in the hold's metadata, written once with it and never changed, so checking the unlock time in
Python before that call races with nothing. Both ops of an unstake carry idempotency keys derived from the
stake's id: an unstake sent again (a lost reply, two processes at once) replays, and applies once.

Stake ids are UUIDv7 strings with a fixed marker in their ``rand_a`` bits (``xxxxxxxx-xxxx-75ac-...``), so a
capture or void of a hold can tell, without a read, whether the id may be a stake; only those ids are read
(a 1 in 4,096 chance for an ordinary hold) and a stake is refused there: it is released by ``unstake`` alone.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tokenbank import convert
from tokenbank.amounts import AmountInput, from_base_units, to_base_units, to_decimal
from tokenbank.errors import (
    HoldStateError,
    InvalidRequestError,
    StakeLockedError,
    StakeNotFoundError,
    blame,
)
from tokenbank.ids import (
    check_account_id,
    check_idempotency_key,
    check_lookup_id,
    check_reason,
    encode_metadata,
    fingerprint,
    new_id,
)
from tokenbank.models import Hold, HoldStatus, Stake, StakeStatus
from tokenbank.status import Status
from tokenbank.storage.base import HoldRecord, OpKind, WriteOp

if TYPE_CHECKING:
    from tokenbank.ledger import Ledger

TERMS = "tokenbank.stake"
"""The metadata key of a stake's hold that holds its terms: ``{"unlock_at": ISO time, "reward": base units}``."""
_MARKER = "75ac"
"""The third group of every stake id (UUID version 7, then 0x5ac)."""
POOL = "tokenbank:staking"
"""The receiver every stake's hold names (its history lists every stake); no capture ever pays it."""
NEVER = datetime(9999, 12, 31, tzinfo=UTC)
"""A stake's hold expiry: past any sweep, so only an unstake ends it."""


def new_stake_id() -> str:
    base = new_id()
    return base[:14] + _MARKER + base[18:]


def may_be_stake(hold_id: str) -> bool:
    """Whether a hold id has a stake id's marker (every stake's has; about 1 in 4,096 ordinary ones too)."""
    return hold_id[14:18] == _MARKER


def stake_terms(metadata: dict[str, Any] | None) -> tuple[datetime, int] | None:
    """(unlock time, reward in base units) of a stake's hold metadata, None for an ordinary hold."""
    terms = (metadata or {}).get(TERMS)
    if not isinstance(terms, dict):
        return None
    return datetime.fromisoformat(terms["unlock_at"]), int(terms["reward"])


class StakingService:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def stake(
        self,
        user_id: str,
        amount: AmountInput,
        *,
        until: datetime,
        reward: AmountInput = 0,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> Stake:
        """Lock ``amount`` of the account's tokens until ``until``; :meth:`unstake` then returns them with
        ``reward`` minted on top (0: none). Raises InsufficientBalanceError, InvalidRequestError (``until`` naive
        or not in the future, metadata using the reserved key), InvalidAmountError, and the account's controls
        (a debit freeze, a spend window: a stake counts as a hold)."""
        ledger = self._ledger
        decimals = ledger.decimals
        with blame("user_id"):
            check_account_id(user_id)
        with blame("amount"):
            units = to_base_units(amount, decimals)
        with blame("reward"):
            reward_units = _reward_units(reward, decimals)
        with blame("until"):
            unlock_at = _unlock_time(until, ledger.ops.now())
        with blame("metadata"):
            encode_metadata(metadata)  # a dict of JSON values, or a typed error
            if metadata is not None and TERMS in metadata:
                raise InvalidRequestError(f"metadata key {TERMS!r} is reserved for the stake's terms")
            terms = {"unlock_at": unlock_at.isoformat(), "reward": str(reward_units)}
            meta = encode_metadata({**(metadata or {}), TERMS: terms})
        with blame("idempotency_key"):
            key = check_idempotency_key(idempotency_key)
        with blame("reason"):
            reason = check_reason(reason)
        request_hash = None if key is None else fingerprint("stake", user_id, units, meta, reason)
        op = WriteOp(
            kind=OpKind.HOLD, tx_id=new_id(), from_user_id=user_id, to_user_id=POOL, amount=units,
            idempotency_key=key, fingerprint=request_hash, metadata=meta, reason=reason, hold_id=new_stake_id(),
            expires_at=NEVER, timestamp=ledger.ops.stamp(),
        )  # fmt: skip
        hold = await ledger.write_hold(op)
        return replace(_stake(hold, decimals), replayed=hold.replayed)

    async def get_stake(self, stake_id: str) -> Stake:
        """Raises StakeNotFoundError."""
        return _stake(convert.hold(await self._record(stake_id), self._ledger.decimals), self._ledger.decimals)

    async def unstake(self, stake_id: str, *, reason: str | None = None) -> Stake:
        """Give a stake's tokens back to its owner with its reward minted on top, in one atomic store call, at or
        after its unlock time. An unstake made before answers again (``replayed``). Raises StakeNotFoundError,
        StakeLockedError (before the unlock time; nothing changed), SupplyCapExceededError (the reward would pass
        the max supply; the stake stays as it was), AccountClosedError and the owner's other credit controls."""
        ledger = self._ledger
        with blame("reason"):
            reason = check_reason(reason)
        record = await self._record(stake_id)
        hold = convert.hold(record, ledger.decimals)
        stake = _stake(hold, ledger.decimals)
        if ledger.ops.now() < stake.unlock_at:
            raise StakeLockedError(f"stake {stake_id} is locked until {stake.unlock_at.isoformat()}", param="stake_id")
        ops = [WriteOp(
            kind=OpKind.VOID, tx_id=new_id(), hold_id=record.id, reason=reason, timestamp=ledger.ops.stamp(),
            idempotency_key=f"{TERMS}:{record.id}", fingerprint=fingerprint("unstake", record.id),
        )]  # fmt: skip
        reward = to_base_units(stake.reward, ledger.decimals) if stake.reward else 0
        if reward:
            ops.append(WriteOp(
                kind=OpKind.MINT, tx_id=new_id(), to_user_id=record.from_user_id, amount=reward,
                idempotency_key=f"{TERMS}.reward:{record.id}", fingerprint=fingerprint("stake reward", record.id),
                metadata=json.dumps({"stake_id": record.id}), reason=reason, timestamp=ledger.ops.stamp(),
                audit_action=ledger.ops.audit("mint"),
            ))  # fmt: skip
        results = await ledger.apply(ops, atomic=True)
        refused = [(op, r.status) for op, r in zip(ops, results, strict=True) if not r.status.ok]
        if refused:
            op, status = next((r for r in refused if r[1] is not Status.BATCH_ABORTED), refused[0])
            [error] = await ledger.refusals([(op, status)])
            if op.kind is OpKind.MINT and error.param == "amount":
                error.param = "reward"
            raise error
        assert results[0].hold is not None
        released = _stake(convert.hold(results[0].hold, ledger.decimals), ledger.decimals)
        return replace(released, replayed=results[0].status is Status.REPLAYED)

    async def _record(self, stake_id: str) -> HoldRecord:
        with blame("stake_id"):
            stake_id = check_lookup_id(stake_id, "stake")
        await self._ledger.token_record()
        record = await self._ledger.storage.get_hold(stake_id) if may_be_stake(stake_id) else None
        if record is None or stake_terms(convert.hold(record, self._ledger.decimals).metadata) is None:
            raise StakeNotFoundError(f"stake not found: {stake_id}", param="stake_id")
        return record

    async def refuse_stake_settlement(self, hold_id: object) -> None:
        """Called before a capture or void of a hold: a stake is released by :meth:`unstake` alone. Raises
        HoldStateError for a stake's hold (reads the hold only when its id has a stake id's marker)."""
        if not isinstance(hold_id, str) or not may_be_stake(hold_id):
            return
        record = await self._ledger.storage.get_hold(hold_id)
        if record is not None and stake_terms(convert.hold(record, self._ledger.decimals).metadata) is not None:
            raise HoldStateError(f"hold {hold_id} is a stake: release it with unstake()", param="hold_id")


def _stake(hold: Hold, decimals: int) -> Stake:
    terms = stake_terms(hold.metadata)
    assert terms is not None
    unlock_at, reward = terms
    metadata = {k: v for k, v in (hold.metadata or {}).items() if k != TERMS} or None
    return Stake(
        id=hold.id, user_id=hold.from_user_id, amount=hold.amount, reward=from_base_units(reward, decimals),
        unlock_at=unlock_at, status=StakeStatus.STAKED if hold.status is HoldStatus.PENDING else StakeStatus.RELEASED,
        created_at=hold.created_at, metadata=metadata,
    )  # fmt: skip


def _reward_units(reward: AmountInput, decimals: int) -> int:
    """A reward in base units: 0 (none) or a positive amount :func:`to_base_units` accepts."""
    value = to_decimal(reward)
    return 0 if value.is_finite() and value == 0 else to_base_units(reward, decimals)


def _unlock_time(until: object, now: datetime) -> datetime:
    if not isinstance(until, datetime) or until.tzinfo is None:
        raise InvalidRequestError("until must be a timezone-aware datetime")
    try:
        until = until.astimezone(UTC)
    except OverflowError:
        raise InvalidRequestError("until must be before 9999-12-31 in UTC") from None
    if until <= now:
        raise InvalidRequestError("until must be in the future")
    if until >= NEVER:
        raise InvalidRequestError("until must be before 9999-12-31 in UTC")
    return until
