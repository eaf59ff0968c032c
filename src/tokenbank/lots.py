"""Credit lots: grants that expire or mature, spent soonest expiry first, and vesting schedules made of them.

A grant is a credit kept apart as a lot: spendable from its ``available_at`` until its ``expires_at``. Every
debit takes from the debited account's spendable lots first (soonest expiry, then lots without expiry) and then
from its plain balance, inside the store's own atomic write; the store records which lots each transaction moved.
A lot's remainder stays in the balance (the supply counts it) but is locked before ``available_at`` and after
``expires_at``, until the expiry sweep moves it to the breakage account with an ``expire`` transaction.
A vesting is one atomic write of grants, one lot per tranche, each available at its own date.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tokenbank import convert
from tokenbank.amounts import AmountInput, from_base_units, to_base_units
from tokenbank.errors import ConfigurationError, InvalidRequestError, blame
from tokenbank.ids import (
    check_account_id,
    check_idempotency_key,
    check_reason,
    encode_metadata,
    fingerprint,
    new_id,
    numbered_key,
)
from tokenbank.models import BalanceDetail, Lot, Transaction, Vesting
from tokenbank.status import Status
from tokenbank.storage.base import OpKind, WriteOp
from tokenbank.storage.capabilities import LotStore

if TYPE_CHECKING:
    from tokenbank.ledger import Ledger

MAX_CATEGORY = 64
MAX_TRANCHES = 1000
TRANCHE_KEY_ROOM = len(f":{MAX_TRANCHES}")
"""Characters a tranche's key adds to the caller's key; longer keys are hashed first."""
SWEEP_BATCH = 500
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)
"""The range of a lot's times."""
VESTING_KEY = "vesting_id"
"""The metadata key naming the vesting a tranche's grant belongs to."""


class LotsService:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def _store(self) -> LotStore:
        storage = self._ledger.storage
        if not isinstance(storage, LotStore):
            raise ConfigurationError(f"this store ({type(storage).__name__}) does not keep credit lots")
        return storage

    async def grant(
        self,
        to_user_id: str,
        amount: AmountInput,
        *,
        expires_at: datetime | None = None,
        available_at: datetime | None = None,
        category: str | None = None,
        from_user_id: str | None = None,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> Transaction:
        """Credit ``amount`` as a lot: minted from the supply (within the max supply), or taken from
        ``from_user_id`` like a transfer. Raises InvalidRequestError (times, category), InvalidAmountError,
        SupplyCapExceededError, InsufficientBalanceError and the accounts' controls."""
        self._store()
        op = self._grant_op(
            to_user_id, amount, expires_at, available_at, category, from_user_id, idempotency_key, metadata, reason
        )
        return await self._ledger.write(op)

    def _grant_op(
        self,
        to_user_id: Any,
        amount: Any,
        expires_at: Any,
        available_at: Any,
        category: Any,
        from_user_id: Any,
        key: Any,
        metadata: Any,
        reason: Any,
    ) -> WriteOp:
        ops = self._ledger.ops
        now = ops.now()
        with blame("to_user_id"):
            check_account_id(to_user_id, "receiver")
        if from_user_id is not None:
            with blame("from_user_id"):
                check_account_id(from_user_id, "sender")
            if from_user_id == to_user_id:
                raise InvalidRequestError("a grant cannot be funded by its own receiver", param="from_user_id")
        with blame("expires_at"):
            expiry = _moment(expires_at, "expires_at")
            if expiry is not None and expiry <= now:
                raise InvalidRequestError("expires_at must be in the future")
        with blame("available_at"):
            available = _moment(available_at, "available_at")
            if available is not None and expiry is not None and available >= expiry:
                raise InvalidRequestError("available_at must be before expires_at")
        with blame("category"):
            category = _category(category)
        base = ops.op(OpKind.GRANT, amount, key, metadata, reason)
        request_hash = None
        if base.idempotency_key is not None:
            terms = (from_user_id, to_user_id, _iso(expiry), _iso(available), category)
            request_hash = fingerprint("grant", base.fingerprint, *terms)
        return replace(
            base, from_user_id=from_user_id, to_user_id=to_user_id, fingerprint=request_hash, expires_at=expiry,
            available_at=available, category=category, audit_action=ops.audit("grant"),
        )  # fmt: skip

    async def get_lots(self, user_id: str) -> list[Lot]:
        """The account's lots with something left, in spend order. Raises InvalidAccountError."""
        with blame("user_id"):
            check_account_id(user_id)
        await self._ledger.token_record()
        return [convert.lot(record, self._ledger.decimals) for record in await self._store().get_lots(user_id)]

    async def balance_detail(self, user_id: str) -> BalanceDetail:
        """Available, held, pending and expired amounts of one account, and its lots."""
        with blame("user_id"):
            check_account_id(user_id)
        ledger = self._ledger
        await ledger.token_record()
        store = self._store()
        now = ledger.ops.now()
        records = await store.get_lots(user_id)
        spendable = (await store.spendable_balances([user_id], now))[user_id]
        held = await ledger.storage.get_held(user_id)
        pending = sum(lot.remaining for lot in records if lot.available_at is not None and lot.available_at > now)
        expired = sum(lot.remaining for lot in records if lot.expires_at is not None and lot.expires_at <= now)
        decimals = ledger.decimals
        lots = [convert.lot(record, decimals) for record in records]
        expiring = sorted((lot for lot in lots if lot.expires_at is not None), key=lambda lot: lot.expires_at or now)
        return BalanceDetail(
            user_id=user_id, available=from_base_units(spendable, decimals), held=from_base_units(held, decimals),
            pending=from_base_units(pending, decimals), expired=from_base_units(expired, decimals),
            expiring=expiring, lots=lots,
        )  # fmt: skip

    async def expire_lots(self, now: datetime | None = None) -> int:
        """Move what is left of every lot expired at ``now`` (default: the bank's clock) to the breakage account,
        SWEEP_BATCH lots per store call; returns how many lots it expired. Safe under concurrent sweepers: a lot
        another sweeper expired first is left alone."""
        ledger = self._ledger
        store = self._store()
        when = ledger.ops.now() if now is None else now
        breakage = ledger.settings.breakage_account
        count = 0
        while expired := await store.expired_lots(when, SWEEP_BATCH):
            stamp = ledger.ops.stamp()
            ops = [_expire(lot_id, owner, breakage, stamp) for lot_id, owner in expired]
            results = await ledger.apply(ops)
            count += sum(1 for result in results if result.status.ok and result.transactions)
            if len(expired) < SWEEP_BATCH or not any(result.transactions for result in results):
                break
        return count

    async def vest(
        self,
        to_user_id: str,
        amount: AmountInput,
        *,
        start: datetime,
        duration: timedelta,
        cliff: timedelta | None = None,
        interval: timedelta = timedelta(days=30),
        from_user_id: str | None = None,
        category: str | None = "vesting",
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> Vesting:
        """Grant ``amount`` as a schedule of lots: one tranche every ``interval`` from ``start``, the last at
        ``start + duration``, the tranches before ``start + cliff`` all at the cliff; each tranche's share is exact
        in base units (what does not divide evenly goes to the later tranches). One atomic write: all of it or
        nothing. Raises what :meth:`grant` raises, and InvalidRequestError for the schedule."""
        self._store()
        ledger = self._ledger
        with blame("start"):
            start = _moment(start, "start") or _missing("start")
        with blame("duration"):
            duration = _positive(duration, "duration")
            _ends_in_range(start, duration)
        with blame("interval"):
            interval = _positive(interval, "interval")
            if interval > duration:
                raise InvalidRequestError("interval must not be longer than duration")
        with blame("cliff"):
            cliff = timedelta(0) if cliff is None else _positive(cliff, "cliff", allow_zero=True)
            if cliff > duration:
                raise InvalidRequestError("cliff must not be longer than duration")
        with blame("amount"):
            units = to_base_units(amount, ledger.decimals)
        with blame("metadata"):
            encode_metadata(metadata)
            if metadata is not None and VESTING_KEY in metadata:
                raise InvalidRequestError(f"metadata key {VESTING_KEY!r} is reserved for the vesting's id")
        with blame("idempotency_key"):
            key = check_idempotency_key(idempotency_key)
        with blame("reason"):
            check_reason(reason)
        tranches = vesting_tranches(units, start, duration, cliff, interval)
        vesting_id = new_id()
        ops = []
        for index, (when, share) in enumerate(tranches):
            op = self._grant_op(
                to_user_id, from_base_units(share, ledger.decimals), None, when, category, from_user_id,
                numbered_key(key, index, TRANCHE_KEY_ROOM), {**(metadata or {}), VESTING_KEY: vesting_id}, reason,
            )  # fmt: skip
            ops.append(op)
        results = await ledger.apply(ops, atomic=True)
        refused = [(op, r.status) for op, r in zip(ops, results, strict=True) if not r.status.ok]
        if refused:
            pair = next((r for r in refused if r[1] is not Status.BATCH_ABORTED), refused[0])
            raise (await ledger.refusals([pair]))[0]
        grants = [ledger.transaction(result, op) for op, result in zip(ops, results, strict=True)]
        lots = [_granted_lot(tx, ledger.decimals) for tx in grants]
        replayed = all(tx.replayed for tx in grants)
        stored_id = (grants[0].metadata or {}).get(VESTING_KEY, vesting_id)
        return Vesting(
            id=str(stored_id), user_id=to_user_id, amount=from_base_units(units, ledger.decimals), start=start,
            duration=duration, cliff=cliff, interval=interval, lots=lots, replayed=replayed,
        )  # fmt: skip


def vesting_tranches(
    units: int, start: datetime, duration: timedelta, cliff: timedelta, interval: timedelta
) -> list[tuple[datetime, int]]:
    """(available at, base units) of each tranche: one per interval (the last at ``start + duration``), cumulative
    shares rounded down so they add up to ``units`` exactly; those before the cliff merged into one at the cliff."""
    count = -(-duration // interval)  # ceiling: a last, shorter interval ends at start + duration
    if count > MAX_TRANCHES:
        raise InvalidRequestError(f"a vesting has at most {MAX_TRANCHES} tranches", param="interval")
    if units < count:
        raise InvalidRequestError(f"amount too small for {count} tranches", param="amount")
    tranches: list[tuple[datetime, int]] = []
    given = 0
    for index in range(1, count + 1):
        when = start + min(interval * index, duration)
        due = units * index // count
        share, given = due - given, due
        if when < start + cliff:
            when = start + cliff
        if tranches and tranches[-1][0] == when:
            tranches[-1] = (when, tranches[-1][1] + share)
        else:
            tranches.append((when, share))
    return tranches


def _expire(lot_id: str, owner: str, breakage: str, stamp: datetime | None) -> WriteOp:
    return WriteOp(
        kind=OpKind.EXPIRE, tx_id=new_id(), lot_id=lot_id, from_user_id=owner, to_user_id=breakage, reason="expired",
        timestamp=stamp,
    )  # fmt: skip


def _granted_lot(tx: Transaction, decimals: int) -> Lot:
    assert tx.to_user_id is not None
    return Lot(
        id=tx.id, user_id=tx.to_user_id, amount=tx.amount, granted=tx.amount, expires_at=tx.expires_at,
        available_at=tx.available_at, category=tx.category, created_at=tx.timestamp,
    )  # fmt: skip


def _moment(value: object, name: str) -> datetime | None:
    """A lot's time in UTC: aware, from 1970 (the stores count microseconds from then) to before 9999."""
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidRequestError(f"{name} must be a timezone-aware datetime")
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment < LATEST:
        raise InvalidRequestError(f"{name} must be from 1970 to before 9999 (UTC)")
    return moment


def _ends_in_range(start: datetime, duration: timedelta) -> None:
    try:
        end = start + duration
    except OverflowError:
        end = LATEST
    if end >= LATEST:
        raise InvalidRequestError("a vesting must end before 9999 (UTC)")


def _missing(name: str) -> datetime:
    raise InvalidRequestError(f"{name} is required")


def _positive(value: object, name: str, *, allow_zero: bool = False) -> timedelta:
    if not isinstance(value, timedelta):
        raise InvalidRequestError(f"{name} must be a timedelta")
    if value < timedelta(0) or (value == timedelta(0) and not allow_zero):
        raise InvalidRequestError(f"{name} must be positive")
    return value


def _category(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_CATEGORY or not value.isprintable():
        raise InvalidRequestError(f"category must be printable text of 1 to {MAX_CATEGORY} characters")
    return value


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
