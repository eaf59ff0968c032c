"""The ledger core: one token's store, the ops that write it, and what happens around every write.

:class:`Ledger` owns the write pipeline (validated :class:`~tokenbank.operations.OpBuilder` ops -> ONE store call ->
metrics, events, logs -> public models), the token as last read, and the balance event hub. The
:class:`~tokenbank.bank.TokenBank` facade and its services are built on it; nothing here knows about them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from tokenbank import convert
from tokenbank.amounts import from_base_units, to_base_units
from tokenbank.clock import SYSTEM_CLOCK, Clock
from tokenbank.errors import (
    STATUS_TO_ERROR,
    BatchAbortedError,
    ConfigurationError,
    InsufficientBalanceError,
    StorageError,
    SupplyCapExceededError,
    TokenBankError,
    TokenNotInitializedError,
    blame,
    error_for,
)
from tokenbank.events import EventHub
from tokenbank.ids import check_account_id
from tokenbank.models import Hold, SettingDrift, TokenInfo, Transaction, TransferRequest, TransferResult
from tokenbank.operations import OpBuilder
from tokenbank.settings import Settings
from tokenbank.splits import plan_split
from tokenbank.status import Status
from tokenbank.storage.base import OpKind, OpResult, Storage, TokenRecord, WriteOp, storage_from_settings
from tokenbank.storage.capabilities import LotStore
from tokenbank.token_config import changes_for, check_decimals, find_drift
from tokenbank.tracing import note_batch

logger = logging.getLogger("tokenbank")

SWEEP_BATCH = 500
"""Expired holds voided per store call."""
TOKEN_REFRESH_SECONDS = 1.0
"""How long reads trust the token as last read (its exclusions, its existence) before reading it again."""


class OperationObserver(Protocol):
    """Told about every write's outcome ("ok" or an error code) and latency (the bank's Prometheus metrics)."""

    def observe(self, operation: str, outcome: str, seconds: float) -> None: ...


class TokenSource(Protocol):
    """What read-only services need: settings, store and token (a :class:`Ledger`, or the bank over one)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def decimals(self) -> int: ...

    @property
    def storage(self) -> Storage: ...

    async def get_token_info(self) -> TokenInfo: ...


def _retrieve(task: asyncio.Future[TokenRecord]) -> None:
    """Mark a shared token read's failure as seen: every caller awaiting it got the error already."""
    if not task.cancelled():
        task.exception()


class Ledger:
    """One token's ledger: its store (built from the settings on first use unless given), the token as last read,
    the write pipeline and the balance event hub."""

    def __init__(
        self,
        settings: Settings,
        *,
        given: frozenset[str],
        storage: Storage | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self.given_settings = given
        """The ``Settings`` fields given by argument or environment; only these are compared with the token."""
        self.ops = OpBuilder(settings, clock)
        self.events = EventHub(settings.decimals)
        self.observer: OperationObserver | None = None
        self.token_created = False
        self.settings_drift: tuple[SettingDrift, ...] = ()
        self._storage = storage
        self._token: TokenRecord | None = None
        self._token_read_at = 0.0
        self._token_read: asyncio.Future[TokenRecord] | None = None
        self._token_listeners: list[Callable[[TokenRecord], None]] = []
        self._event_feed: Callable[[], Awaitable[None]] | None = None
        self._local_events = False
        self._event_lock = asyncio.Lock()

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = storage_from_settings(self.settings)
        return self._storage

    @property
    def storage_built(self) -> bool:
        """Whether the store exists yet (closing a ledger that never built one has nothing to close)."""
        return self._storage is not None

    @property
    def decimals(self) -> int:
        return self.settings.decimals

    @property
    def clock(self) -> Clock:
        """Where this ledger's time comes from (see :mod:`tokenbank.clock`)."""
        return self.ops.clock

    # the token ---------------------------------------------------------------------------------------------
    def on_token(self, listener: Callable[[TokenRecord], None]) -> None:
        """Call ``listener(token)`` whenever the stored token is read (the formatter follows its emoji)."""
        self._token_listeners.append(listener)

    async def initialize_token(self) -> TokenInfo:
        """Create the token from the settings and mint the initial supply to the treasury, once; an existing
        token is adopted as stored. Raises ConfigurationError (other decimals, an invalid setting)."""
        s = self.settings
        check_account_id(s.treasury_account, "TOKEN_TREASURY_ACCOUNT")
        for account in s.leaderboard_exclude or ():
            check_account_id(account, "TOKEN_LEADERBOARD_EXCLUDE")
        wanted = TokenRecord(
            symbol=s.symbol,
            name=s.name,
            decimals=s.decimals,
            emoji=s.emoji,
            treasury_account=s.treasury_account,
            initial_supply=self._units_or_zero(s.initial_supply),
            max_supply=None if s.max_supply is None else self._units_or_zero(s.max_supply),
            total_supply=0,
            created_at=datetime.now(UTC),
            leaderboard_exclude=None if s.leaderboard_exclude is None else tuple(dict.fromkeys(s.leaderboard_exclude)),
        )
        mint = self.ops.initial_mint(s.treasury_account, wanted.initial_supply) if wanted.initial_supply else None
        token = await self.storage.create_token(wanted, mint)
        self.adopt(token, created=token.created_at == wanted.created_at)
        return convert.token_info(token)

    def _units_or_zero(self, amount: Decimal) -> int:
        return to_base_units(amount, self.decimals) if amount else 0

    async def configure_token(self, **wanted: Any) -> TokenInfo:
        """Change the stored token's settings (see :meth:`TokenBank.configure_token`). Raises
        SupplyCapExceededError (nothing changed), InvalidRequestError, InvalidAmountError, InvalidAccountError,
        TokenNotInitializedError."""
        token = await self.read_token()
        changes = changes_for(token, **wanted)
        if not changes:
            return convert.token_info(token)
        try:
            updated = await self.storage.update_token(changes)
        except SupplyCapExceededError:
            cap = changes["max_supply"]
            assert isinstance(cap, int)
            message = f"max supply {from_base_units(cap, token.decimals)} is below the total supply; nothing changed"
            logger.info("configure_token refused: %s", message, extra={"operation": "configure_token"})
            raise SupplyCapExceededError(message, param="max_supply") from None
        self.remember(updated)
        logger.info(
            "token %s configured: %s", updated.symbol, ", ".join(changes),
            extra={"operation": "configure_token", "fields": sorted(changes)},
        )  # fmt: skip
        return convert.token_info(updated)

    def adopt(self, token: TokenRecord, *, created: bool = False) -> None:
        """Make the stored token this ledger's truth; warn once per given setting that disagrees with it.
        Raises ConfigurationError if the stored token has other decimals."""
        check_decimals(self.settings, token)
        self.token_created = created
        self.remember(token)
        for drift in self.settings_drift:
            logger.warning(
                "%s; the setting is ignored and the stored value kept (change it with configure_token() or "
                "'tokenbank token configure')",
                drift.describe(),
                extra={"operation": "open", "field": drift.field, "variable": drift.variable},
            )

    def remember(self, token: TokenRecord) -> None:
        self._token = token
        self._token_read_at = time.monotonic()
        self.settings_drift = find_drift(self.settings, self.given_settings, token)
        for listener in self._token_listeners:
            listener(token)

    async def read_token(self) -> TokenRecord:
        """The stored token, read now. Raises TokenNotInitializedError if there is none."""
        token = await self.storage.get_token()
        if token is None:
            self._token = None
            raise TokenNotInitializedError(
                f"token '{self.settings.symbol}' does not exist; create it with initialize_token(), "
                "'tokenbank init' or an open with TOKEN_AUTO_CREATE on"
            )
        self.remember(token)
        return token

    async def token_record(self) -> TokenRecord:
        """The stored token as last read, read again when older than TOKEN_REFRESH_SECONDS (one read shared by
        concurrent callers), so that a change made by another process is seen and reads of a token that
        does not exist fail. Raises TokenNotInitializedError."""
        token = self._token
        if token is not None and time.monotonic() - self._token_read_at < TOKEN_REFRESH_SECONDS:
            return token
        task = self._token_read
        if task is None or task.done():
            task = self._token_read = asyncio.ensure_future(self.read_token())
            task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def get_token_info(self) -> TokenInfo:
        """The token as stored and its current total supply. Raises TokenNotInitializedError."""
        return convert.token_info(await self.read_token())

    async def circulating_supply(self) -> Decimal:
        """Total supply minus what the token's excluded accounts hold, held funds included."""
        token = await self.read_token()
        excluded = await self.storage.sum_balances(token.excluded_accounts)
        return from_base_units(token.total_supply - excluded, self.decimals)

    async def get_balance(self, user_id: str) -> Decimal:
        """Spendable balance (held funds excluded). Raises InvalidAccountError, TokenNotInitializedError."""
        with blame("user_id"):
            check_account_id(user_id)
        await self.token_record()
        balances = await self.spendable([user_id])
        return from_base_units(balances[user_id], self.decimals)

    async def spendable(self, user_ids: Sequence[str]) -> dict[str, int]:
        """What each account can spend now (base units): its balance, less what its credit lots hold locked."""
        storage = self.storage
        if isinstance(storage, LotStore):
            return await storage.spendable_balances(user_ids, self.ops.now())
        return await storage.get_balances(user_ids)

    # events ------------------------------------------------------------------------------------------------
    async def start_event_feed(self) -> None:
        """Listen to the store's cross-process feed, or dispatch our own writes if it has none. Raises
        ConfigurationError when TOKEN_ENABLE_NOTIFICATIONS is off."""
        if not self.settings.enable_notifications:
            raise ConfigurationError("TOKEN_ENABLE_NOTIFICATIONS: balance events are disabled")
        async with self._event_lock:
            if self._event_feed is None and not self._local_events:
                self._event_feed = await self.storage.listen(self.events.dispatch)
                self._local_events = self._event_feed is None

    async def stop_events(self) -> None:
        """Stop listening and deliver the events already dispatched."""
        if self._event_feed is not None:
            await self._event_feed()
            self._event_feed = None
        await self.events.drain()

    # writes ------------------------------------------------------------------------------------------------
    async def apply(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[OpResult]:
        """The one path of every write to the store: metrics, events, logs and the span's batch size happen here."""
        note_batch(len(ops))
        started = time.perf_counter()
        try:
            results = await self.storage.apply(ops, atomic=atomic)
        except StorageError as exc:
            logger.error("storage failure: %s", exc, extra={"operation": ops[0].kind.value, "count": len(ops)})
            if self.observer is not None:
                for op in ops:
                    self.observer.observe(op.kind.value, exc.code, time.perf_counter() - started)
            raise
        self.record(ops, results, time.perf_counter() - started)
        return results

    def record(self, ops: Sequence[WriteOp], results: Sequence[OpResult], elapsed: float) -> None:
        """What follows every applied write (also one leg of an exchange, applied by another path): metrics,
        balance events of this process's writes, debug logs."""
        if self.observer is not None:
            for op, result in zip(ops, results, strict=True):
                outcome = "ok" if result.status.ok else STATUS_TO_ERROR[result.status].code
                self.observer.observe(op.kind.value, outcome, elapsed)
        if self._local_events and self.events.active:
            for result in results:
                if result.status is Status.OK:
                    for tx in result.transactions:
                        self.events.dispatch(tx)
        if logger.isEnabledFor(logging.DEBUG):
            for op, result in zip(ops, results, strict=True):
                logger.debug(
                    "%s %s", op.kind.value, result.status.name,
                    extra={"operation": op.kind.value, "from_user_id": op.from_user_id, "to_user_id": op.to_user_id,
                           "amount": op.amount, "transaction_id": op.tx_id, "status": result.status.name,
                           "latency_ms": round(elapsed * 1000, 3)},
                )  # fmt: skip

    async def apply_one(self, op: WriteOp) -> OpResult:
        """Apply one op; a refusal raises its error (InsufficientBalanceError...)."""
        [result] = await self.apply([op])
        if not result.status.ok:
            [error] = await self.refusals([(op, result.status)])
            logger.info(
                "%s refused: %s", op.kind.value, error.code, extra={"operation": op.kind.value, "code": error.code}
            )
            raise error
        return result

    async def write(self, op: WriteOp) -> Transaction:
        """Apply one op that writes a transaction; returns it. Raises the op's refusal."""
        return self.transaction(await self.apply_one(op), op)

    async def write_hold(self, op: WriteOp) -> Hold:
        """Apply one hold op (hold, capture, void); returns the hold. Raises the op's refusal."""
        result = await self.apply_one(op)
        assert result.hold is not None
        hold = convert.hold(result.hold, self.decimals)
        return replace(hold, replayed=True) if _replayed(op, result) else hold

    async def transfer_many(self, requests: Sequence[TransferRequest], *, atomic: bool = False) -> list[TransferResult]:
        """Many transfers in one store call, in order (see :meth:`TokenBank.transfer_many`); never raises for an
        item's failure."""
        ops: list[WriteOp | None] = []
        errors: list[TokenBankError | None] = []
        for r in requests:
            try:
                ops.append(
                    self.ops.transfer(r.from_user_id, r.to_user_id, r.amount, r.idempotency_key, r.metadata, None)
                )
                errors.append(None)
            except TokenBankError as exc:
                ops.append(None)
                errors.append(exc)
        if atomic and any(errors):
            return [
                TransferResult(r, error=e or BatchAbortedError("not applied: another item of the atomic batch failed"))
                for r, e in zip(requests, errors, strict=True)
            ]
        valid = [op for op in ops if op is not None]
        applied = await self.apply(valid, atomic=atomic) if valid else []
        refused = iter(
            await self.refusals([(op, r.status) for op, r in zip(valid, applied, strict=True) if not r.status.ok])
        )
        results = iter(applied)
        out = []
        for request, op, error in zip(requests, ops, errors, strict=True):
            if op is None:
                out.append(TransferResult(request, error=error))
                continue
            result = next(results)
            if result.status.ok:
                out.append(TransferResult(request, transaction=self.transaction(result, op)))
            else:
                out.append(TransferResult(request, error=next(refused)))
        return out

    async def transfer_split(
        self,
        from_user_id: Any,
        amount: Any,
        legs: Any,
        remainder_to: Any,
        idempotency_key: Any,
        metadata: Any,
        reason: Any,
    ) -> list[Transaction]:
        """One payment shared among receivers, every leg in ONE atomic store call (see
        :meth:`TokenBank.transfer_split`). Raises the first refused leg's error; an insufficient balance is the
        sender's for the whole amount."""
        plan = plan_split(from_user_id, amount, legs, remainder_to, idempotency_key, metadata, reason, self.decimals)
        ops = []
        for n, leg in enumerate(plan.legs):
            op = self.ops.transfer(
                plan.from_user_id, leg.to_user_id, from_base_units(leg.units, self.decimals), plan.leg_key(n),
                plan.metadata, reason,
            )  # fmt: skip
            # The split's own fingerprint: the same request replays even though its split id is new.
            ops.append(op if plan.idempotency_key is None else replace(op, fingerprint=plan.leg_fingerprint(n)))
        results = await self.apply(ops, atomic=True)
        refused = [(op, result.status) for op, result in zip(ops, results, strict=True) if not result.status.ok]
        if refused:
            op, status = next((r for r in refused if r[1] is not Status.BATCH_ABORTED), refused[0])
            if status is Status.INSUFFICIENT_BALANCE:
                op = replace(op, amount=plan.units)  # what the sender cannot cover is the split, not one leg
            [error] = await self.refusals([(op, status)])
            logger.info(
                "transfer_split refused: %s", error.code, extra={"operation": "transfer_split", "code": error.code}
            )
            raise error
        return [self.transaction(result, op) for op, result in zip(ops, results, strict=True)]

    async def refusals(self, refused: Sequence[tuple[WriteOp, Status]]) -> list[TokenBankError]:
        """The errors of refused ops, in order. An insufficient balance says the amount requested and what the
        debited account had available (its balance plus its overdraft limit), read right after the refusal (on
        this failure path only; the stores report the refusal alone)."""
        debits: dict[int, tuple[str, int]] = {}
        for index, (op, status) in enumerate(refused):
            if status is Status.INSUFFICIENT_BALANCE:
                debit = await self._debit_of(op)
                if debit is not None:
                    debits[index] = debit
        balances: dict[str, int] = {}
        if debits:
            try:
                balances = await self.spendable(sorted({user for user, _ in debits.values()}))
                for user in balances:  # an overdraft is available too: down to minus its limit
                    controls = await self.storage.get_controls(user, self.ops.now())
                    if controls is not None and controls.overdraft:
                        balances[user] += controls.overdraft
            except TokenBankError as exc:  # the refusal is the answer; a failed extra read only leaves it vaguer
                logger.warning("balance read after a refusal failed: %s", exc, extra={"operation": "refusal"})
        errors: list[TokenBankError] = []
        for index, (op, status) in enumerate(refused):
            # A reversal has no amount argument: its transaction is what cannot be covered.
            param = "transaction_id" if op.kind is OpKind.REVERSE and status is Status.INSUFFICIENT_BALANCE else None
            if index not in debits:
                errors.append(error_for(status, param=param))
                continue
            user, units = debits[index]
            errors.append(self._insufficient(user, units, balances.get(user), param or "amount"))
        return errors

    async def _debit_of(self, op: WriteOp) -> tuple[str, int] | None:
        """The account an op debits and by how much (a reversal: the original's receiver, its amount)."""
        if op.kind is OpKind.REVERSE:
            assert op.reverses_id is not None
            try:
                original = await self.storage.get_transaction(op.reverses_id)
            except TokenBankError:
                return None
            if original is None or original.to_user_id is None:
                return None
            return original.to_user_id, original.amount
        if op.from_user_id is None or op.amount is None:
            return None
        return op.from_user_id, op.amount

    def _insufficient(self, user: str, units: int, available: int | None, param: str) -> InsufficientBalanceError:
        requested = from_base_units(units, self.decimals)
        spendable = None if available is None else from_base_units(available, self.decimals)
        if spendable is None:
            message = f"insufficient balance: {requested} requested from {user!r}"
        else:
            message = f"insufficient balance: {user!r} has {spendable} available, {requested} requested"
        error = InsufficientBalanceError(message, param=param, user_id=user, available=spendable, requested=requested)
        error.status = Status.INSUFFICIENT_BALANCE
        return error

    async def expire_holds(self, now: datetime | None = None) -> int:
        """Void every pending hold past its expiry at ``now`` (default: the bank's clock), SWEEP_BATCH per store
        call; returns how many were voided."""
        count = 0
        when = self.ops.now() if now is None else now
        while ids := await self.storage.expired_holds(when, SWEEP_BATCH):
            results = await self.apply([self.ops.expire(i) for i in ids])
            count += sum(1 for r in results if r.status.ok)
            if len(ids) < SWEEP_BATCH:
                break
        return count

    async def prune_spends(self) -> int:
        """Forget spends that left their account's spend window (the hold sweeper runs it with the holds)."""
        return await self.storage.prune_spends(self.ops.now())

    def transaction(self, result: OpResult, op: WriteOp | None = None) -> Transaction:
        """The public model of the transaction an applied op wrote; ``replayed`` for an idempotent replay of
        ``op`` (without ``op``, never)."""
        tx = convert.transaction(result.transactions[0], self.decimals)
        return replace(tx, replayed=True) if _replayed(op, result) else tx


def _replayed(op: WriteOp | None, result: OpResult) -> bool:
    """An idempotent replay: the key matched an earlier write. A store also answers REPLAYED to a resend of this
    very op (its first reply was lost), which keeps the op's own transaction id and is a first write."""
    if op is None or result.status is not Status.REPLAYED or not result.transactions:
        return False
    return result.transactions[0].id != op.tx_id
