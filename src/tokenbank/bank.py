"""The TokenBank facade: validate the request, make ONE store call, turn its status into a result or error."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from tokenbank import convert
from tokenbank.amounts import from_base_units, to_base_units
from tokenbank.errors import (
    STATUS_TO_ERROR,
    BatchAbortedError,
    ConfigurationError,
    HoldNotFoundError,
    InvalidRequestError,
    StorageError,
    SupplyCapExceededError,
    TokenBankError,
    TokenNotInitializedError,
    error_for,
)
from tokenbank.events import EventHub
from tokenbank.health import HealthReport, check_health
from tokenbank.ids import (
    check_account_id,
    check_lookup_id,
    new_id,
)
from tokenbank.metrics import Metrics, metrics_available
from tokenbank.models import (
    AuditEntry,
    Check,
    Hold,
    Holder,
    SettingDrift,
    TokenInfo,
    Transaction,
    TransferRequest,
    TransferResult,
    VerifyReport,
)
from tokenbank.operations import OpBuilder, check_page
from tokenbank.services.balances import BalancesService
from tokenbank.services.formatter import FormatterService
from tokenbank.services.pricing import PriceProvider, PricingService
from tokenbank.services.transactions import TransactionsService
from tokenbank.settings import Settings
from tokenbank.storage.base import OpKind, OpResult, Storage, TokenRecord, WriteOp, storage_from_settings
from tokenbank.storage.status import Status
from tokenbank.token_config import UNSET, Unset, changes_for, check_decimals, find_drift

if TYPE_CHECKING:
    from tokenbank.services.analytics import AnalyticsService
    from tokenbank.storage.hybrid.backend import HybridStorage
    from tokenbank.storage.hybrid.rebuild import RebuildReport
    from tokenbank.storage.hybrid.reconcile import ReconcileReport

logger = logging.getLogger("tokenbank")

_SWEEP_BATCH = 500
_STOP_WAIT = 5.0
TOKEN_REFRESH_SECONDS = 1.0
"""How long reads trust the token as last read (its exclusions, its existence) before reading it again."""


def _retrieve(task: asyncio.Future[TokenRecord]) -> None:
    """Mark a shared token read's failure as seen: every caller awaiting it got the error already."""
    if not task.cancelled():
        task.exception()


class TokenBank:
    """An in-app token ledger. Use as ``async with TokenBank(Settings(...)) as bank:``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        storage: Storage | None = None,
        price_provider: PriceProvider | None = None,
        **overrides: Any,
    ) -> None:
        if settings is None:
            settings = Settings.load(**overrides)
        given = settings.model_fields_set | overrides.keys()
        if overrides:
            settings = Settings.load(**{**settings.model_dump(), **overrides})
        self.settings = settings
        self._given = frozenset(given)
        self._ops = OpBuilder(settings)
        self._storage = storage
        self._token: TokenRecord | None = None
        self._token_read_at = 0.0
        self._token_read: asyncio.Future[TokenRecord] | None = None
        self._created = False
        self._drift: tuple[SettingDrift, ...] = ()
        self._sweeper: asyncio.Task[None] | None = None
        self._events = EventHub(settings.decimals)
        self._event_feed: Callable[[], Awaitable[None]] | None = None
        self._local_events = False
        self._event_lock = asyncio.Lock()
        self.balances = BalancesService(self)
        self.transactions = TransactionsService(self)
        self.formatter = FormatterService(self.settings)
        self.pricing = PricingService(self, price_provider)
        self._metrics: Metrics | None = Metrics.for_bank(self) if metrics_available() else None

    @classmethod
    def from_env(cls, **overrides: Any) -> TokenBank:
        """A bank configured from the environment (``TOKEN_*``, ``DATABASE_URL``, ``REDIS_URL``)."""
        return cls(Settings.load(**overrides))

    @functools.cached_property
    def analytics(self) -> AnalyticsService:
        """Volumes, active accounts, distributions, supply over time (SQL stores). Imported on first use, so
        a bank that never asks for analytics does not load the SQL machinery."""
        from tokenbank.services.analytics import AnalyticsService

        return AnalyticsService(self)

    # lifecycle ---------------------------------------------------------------------------------------------
    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = storage_from_settings(self.settings)
        return self._storage

    @property
    def decimals(self) -> int:
        return self.settings.decimals

    @property
    def given_settings(self) -> frozenset[str]:
        """The ``Settings`` fields given by argument or environment (the others are defaults); only these are
        compared with the stored token."""
        return self._given

    @property
    def settings_drift(self) -> tuple[SettingDrift, ...]:
        """Given settings that disagree with the stored token, found when the bank last read it: they were
        ignored (logged once each at open, and listed by :meth:`health`)."""
        return self._drift

    @property
    def token_created(self) -> bool:
        """True if this bank's :meth:`open` (or :meth:`initialize_token`) created the token."""
        return self._created

    async def open(self) -> None:
        """Connect, create or upgrade the schema, and load the token. A missing token is created from the
        settings if ``auto_create`` is on (see :meth:`initialize_token`); an existing one is used as stored.
        Raises TokenNotInitializedError (no token and ``auto_create`` off), ConfigurationError (the stored token
        has other decimals), StorageUnavailableError."""
        try:
            await self.storage.open()
            if self.settings.auto_create:
                await self.initialize_token()
            else:
                self._adopt(await self._read_token())
        except BaseException:
            await self.storage.close()  # release connections of a half-opened store
            raise
        if self.settings.hold_sweep_interval > 0 and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_holds_forever(), name="tokenbank-hold-sweeper")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            # Bounded: closing must not hang on a store call that ignores cancellation (seen once in CI).
            _, pending = await asyncio.wait({self._sweeper}, timeout=_STOP_WAIT)
            if pending:
                logger.warning("hold sweeper did not stop within %s s", _STOP_WAIT, extra={"operation": "close"})
            self._sweeper = None
        if self._event_feed is not None:
            await self._event_feed()
            self._event_feed = None
        await self._events.drain()
        if self._storage is not None:
            await self._storage.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # token -------------------------------------------------------------------------------------------------
    async def initialize_token(self) -> TokenInfo:
        """Create the token from the settings and mint the initial supply to the treasury, once. An existing
        token is left exactly as stored: settings that disagree with it are ignored, with one warning each on
        the ``tokenbank`` logger (see :attr:`settings_drift`); change it with :meth:`configure_token`.
        Raises ConfigurationError if the stored token has other decimals or a setting is invalid."""
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
        mint = None
        if wanted.initial_supply:
            mint = WriteOp(
                kind=OpKind.MINT, tx_id=new_id(), to_user_id=s.treasury_account, amount=wanted.initial_supply,
                reason="initial supply", audit_action=self._ops.audit("mint"),
            )  # fmt: skip
        token = await self.storage.create_token(wanted, mint)
        self._adopt(token, created=token.created_at == wanted.created_at)
        return convert.token_info(token)

    def _adopt(self, token: TokenRecord, *, created: bool = False) -> None:
        """Make the stored token this bank's truth; warn once per given setting that disagrees with it."""
        check_decimals(self.settings, token)
        self._created = created
        self._remember(token)
        for drift in self._drift:
            logger.warning(
                "%s; the setting is ignored and the stored value kept (change it with configure_token() or "
                "'tokenbank token configure')",
                drift.describe(),
                extra={"operation": "open", "field": drift.field, "variable": drift.variable},
            )

    def _remember(self, token: TokenRecord) -> None:
        self._token = token
        self._token_read_at = time.monotonic()
        self._drift = find_drift(self.settings, self._given, token)
        self.formatter.use_emoji(token.emoji)

    async def _read_token(self) -> TokenRecord:
        """The stored token, read now. Raises TokenNotInitializedError if there is none."""
        token = await self.storage.get_token()
        if token is None:
            self._token = None
            raise TokenNotInitializedError(
                f"token '{self.settings.symbol}' does not exist; create it with initialize_token(), "
                "'tokenbank init' or an open with TOKEN_AUTO_CREATE on"
            )
        self._remember(token)
        return token

    async def _token_record(self) -> TokenRecord:
        """The stored token as last read, read again when older than TOKEN_REFRESH_SECONDS (one read shared by
        concurrent callers), so that a change made by another process is seen and reads of a token that
        does not exist fail. Raises TokenNotInitializedError."""
        token = self._token
        if token is not None and time.monotonic() - self._token_read_at < TOKEN_REFRESH_SECONDS:
            return token
        task = self._token_read
        if task is None or task.done():
            task = self._token_read = asyncio.ensure_future(self._read_token())
            task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def configure_token(
        self,
        *,
        name: str | Unset = UNSET,
        emoji: str | Unset | None = UNSET,
        max_supply: Any = UNSET,
        treasury_account: str | Unset = UNSET,
        leaderboard_exclude: Sequence[str] | Unset | None = UNSET,
    ) -> TokenInfo:
        """Change the stored token's settings; only the arguments given change. ``emoji=None`` removes the emoji,
        ``max_supply=None`` the cap, ``leaderboard_exclude=None`` goes back to excluding the treasury alone
        (whichever account it is). Every change is one atomic store step with one ``token.configure`` audit
        entry listing the changed fields; values equal to the stored ones change nothing and write nothing.
        Returns the token as now stored. Raises SupplyCapExceededError (nothing changed) when the new max supply
        is below the total supply, InvalidRequestError, InvalidAmountError, InvalidAccountError for bad values,
        TokenNotInitializedError."""
        token = await self._read_token()
        changes = changes_for(
            token, name=name, emoji=emoji, max_supply=max_supply, treasury_account=treasury_account,
            leaderboard_exclude=leaderboard_exclude,
        )  # fmt: skip
        if not changes:
            return convert.token_info(token)
        try:
            updated = await self.storage.update_token(changes)
        except SupplyCapExceededError:
            cap = changes["max_supply"]
            assert isinstance(cap, int)
            message = f"max supply {from_base_units(cap, token.decimals)} is below the total supply; nothing changed"
            logger.info("configure_token refused: %s", message, extra={"operation": "configure_token"})
            raise SupplyCapExceededError(message) from None
        self._remember(updated)
        logger.info(
            "token %s configured: %s", updated.symbol, ", ".join(changes),
            extra={"operation": "configure_token", "fields": sorted(changes)},
        )  # fmt: skip
        return convert.token_info(updated)

    def _units_or_zero(self, amount: Decimal) -> int:
        return to_base_units(amount, self.decimals) if amount else 0

    async def get_token_info(self) -> TokenInfo:
        """The token as stored (its settings) and its current total supply. Raises TokenNotInitializedError."""
        return convert.token_info(await self._read_token())

    async def get_total_supply(self) -> Decimal:
        return (await self.get_token_info()).total_supply

    async def get_circulating_supply(self) -> Decimal:
        """Total supply minus what the token's leaderboard exclusions (the treasury by default) hold, held
        funds included. Raises TokenNotInitializedError."""
        token = await self._read_token()
        excluded = await self.storage.sum_balances(token.excluded_accounts)
        return from_base_units(token.total_supply - excluded, self.decimals)

    # balances and leaderboard ------------------------------------------------------------------------------
    async def get_balance(self, user_id: str) -> Decimal:
        """Spendable balance (held funds excluded). Raises InvalidAccountError, TokenNotInitializedError."""
        check_account_id(user_id)
        await self._token_record()
        balances = await self.storage.get_balances([user_id])
        return from_base_units(balances[user_id], self.decimals)

    async def get_balances(self, user_ids: Sequence[str]) -> dict[str, Decimal]:
        ids = [check_account_id(user_id) for user_id in user_ids]
        await self._token_record()
        balances = await self.storage.get_balances(list(dict.fromkeys(ids)))
        return {user_id: from_base_units(units, self.decimals) for user_id, units in balances.items()}

    async def get_held_balance(self, user_id: str) -> Decimal:
        """Funds reserved by the account's pending holds."""
        check_account_id(user_id)
        await self._token_record()
        return from_base_units(await self.storage.get_held(user_id), self.decimals)

    async def get_top_holders(self, limit: int = 10, offset: int = 0) -> list[Holder]:
        """Highest balances first (the token's excluded accounts left out). Raises InvalidRequestError for bad
        paging, TokenNotInitializedError."""
        self._require_leaderboard()
        check_page(limit, offset)
        token = await self._token_record()
        rows = await self.storage.top_holders(limit, offset, token.excluded_accounts)
        return [
            Holder(user_id, from_base_units(units, self.decimals), offset + i + 1)
            for i, (user_id, units) in enumerate(rows)
        ]

    async def get_rank(self, user_id: str) -> int | None:
        """1-based leaderboard position; None for excluded accounts and accounts without balance."""
        self._require_leaderboard()
        check_account_id(user_id)
        token = await self._token_record()
        return await self.storage.rank(user_id, token.excluded_accounts)

    async def get_balance_at(self, user_id: str, at: datetime) -> Decimal:
        """Spendable balance right after the last transaction at or before ``at`` (an aware datetime)."""
        check_account_id(user_id)
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise InvalidRequestError("at must be a timezone-aware datetime")
        await self._token_record()
        return from_base_units(await self.storage.balance_at(user_id, at), self.decimals)

    # writes ------------------------------------------------------------------------------------------------
    async def transfer(
        self,
        from_user_id: str,
        to_user_id: str,
        amount: Any,
        *,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> Transaction:
        """Move ``amount`` between accounts, atomically. Raises InvalidAmountError, InvalidAccountError,
        InsufficientBalanceError, IdempotencyConflictError, StorageError."""
        op = self._ops.transfer(from_user_id, to_user_id, amount, idempotency_key, metadata, reason)
        return self._transaction(await self._apply_one(op), op)

    async def mint(
        self,
        to_user_id: str,
        amount: Any,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Transaction:
        """Create new tokens (audited). Raises SupplyCapExceededError past TOKEN_MAX_SUPPLY."""
        check_account_id(to_user_id)
        op = self._ops.op(
            OpKind.MINT,
            amount,
            idempotency_key,
            metadata,
            reason,
            to_user_id=to_user_id,
            audit_action=self._ops.audit("mint"),
        )
        return self._transaction(await self._apply_one(op), op)

    async def burn(
        self,
        user_id: str,
        amount: Any,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Transaction:
        """Destroy tokens from an account (audited). Raises InsufficientBalanceError."""
        check_account_id(user_id)
        op = self._ops.op(
            OpKind.BURN,
            amount,
            idempotency_key,
            metadata,
            reason,
            from_user_id=user_id,
            audit_action=self._ops.audit("burn"),
        )
        return self._transaction(await self._apply_one(op), op)

    async def hold(
        self,
        from_user_id: str,
        to_user_id: str,
        amount: Any,
        *,
        expires_in: float | timedelta,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> Hold:
        """Reserve funds for a later capture or void (two-phase transfer); held funds are not spendable.
        Raises InsufficientBalanceError, InvalidRequestError (bad expiry) and the transfer errors."""
        op = self._ops.hold(from_user_id, to_user_id, amount, expires_in, idempotency_key, metadata, reason)
        return self._hold(await self._apply_one(op), op)

    async def capture(self, hold_id: str, amount: Any = None, *, reason: str | None = None) -> Hold:
        """Pay out a pending hold, all or part; a partial capture releases the rest to the sender.
        Raises HoldNotFoundError, HoldStateError (captured, voided or expired), InvalidAmountError."""
        op = self._ops.capture(hold_id, amount, reason)
        return self._hold(await self._apply_one(op), op)

    async def void(self, hold_id: str, *, reason: str | None = None) -> Hold:
        """Release a pending (or expired) hold back to the sender. Raises HoldNotFoundError, HoldStateError."""
        op = self._ops.void(hold_id, reason)
        return self._hold(await self._apply_one(op), op)

    async def get_hold(self, hold_id: str) -> Hold:
        hold_id = check_lookup_id(hold_id, "hold")
        await self._token_record()
        record = await self.storage.get_hold(hold_id)
        if record is None:
            raise HoldNotFoundError(f"hold not found: {hold_id}")
        return convert.hold(record, self.decimals)

    async def expire_holds(self, now: datetime | None = None) -> int:
        """Void every pending hold past its expiry; returns how many were voided. Runs in the background
        every TOKEN_HOLD_SWEEP_INTERVAL seconds while the bank is open."""
        count = 0
        while ids := await self.storage.expired_holds(now or datetime.now(UTC), _SWEEP_BATCH):
            ops = [WriteOp(kind=OpKind.VOID, tx_id=new_id(), hold_id=i, reason="expired") for i in ids]
            results = await self._apply(ops)
            count += sum(1 for r in results if r.status.ok)
            if len(ids) < _SWEEP_BATCH:
                break
        return count

    async def _sweep_holds_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.hold_sweep_interval)
            try:
                await self.expire_holds()
            except TokenBankError as exc:
                logger.warning("hold expiry sweep failed: %s", exc, extra={"operation": "expire_holds"})

    async def reverse(
        self,
        transaction_id: str,
        *,
        reason: str,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Transaction:
        """Undo a transfer with a correcting transaction (history is never edited; at most once).
        Raises TransactionNotFoundError, TransactionStateError, InsufficientBalanceError."""
        if not reason:
            raise InvalidRequestError("a reversal needs a reason")
        tx_id = check_lookup_id(transaction_id, "transaction")
        op = self._ops.op(
            OpKind.REVERSE,
            None,
            idempotency_key,
            metadata,
            reason,
            reverses_id=tx_id,
            audit_action=self._ops.audit("reverse"),
        )
        return self._transaction(await self._apply_one(op), op)

    async def transfer_many(self, requests: Sequence[TransferRequest], *, atomic: bool = False) -> list[TransferResult]:
        """Apply many transfers in one store call, in order. ``atomic``: all or nothing (every item then fails,
        the culprit with its own error, the rest with BatchAbortedError). Never raises for an item's failure."""
        ops: list[WriteOp | None] = []
        errors: list[TokenBankError | None] = []
        for request in requests:
            try:
                ops.append(
                    self._ops.transfer(
                        request.from_user_id, request.to_user_id, request.amount, request.idempotency_key,
                        request.metadata, None,
                    )
                )  # fmt: skip
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
        results = iter(await self._apply(valid, atomic=atomic) if valid else [])
        out = []
        for request, op, error in zip(requests, ops, errors, strict=True):
            if op is None:
                out.append(TransferResult(request, error=error))
                continue
            result = next(results)
            if result.status.ok:
                out.append(TransferResult(request, transaction=self._transaction(result, op)))
            else:
                out.append(TransferResult(request, error=error_for(result.status)))
        return out

    @property
    def metrics(self) -> Metrics:
        """Prometheus metrics of this bank (its own registry). Raises ConfigurationError without the metrics
        extra (``pip install 'tokenbank[metrics]'``)."""
        if self._metrics is None:
            self._metrics = Metrics.for_bank(self)
        return self._metrics

    async def health(self) -> HealthReport:
        """Store ping, token check and the store's own checks (each bounded in time); never raises for a
        failing store: the report says ``down`` or ``degraded``."""
        return await check_health(self)

    async def reconcile(self, repair: bool = False) -> ReconcileReport:
        """Hybrid mode: compare Redis with PostgreSQL account by account once the sync backlog is drained;
        ``repair`` fixes Redis from PostgreSQL (the store of record) with an audit entry. Raises
        ConfigurationError in other modes, StorageUnavailableError."""
        from tokenbank.storage.hybrid.reconcile import reconcile

        return await reconcile(self._hybrid_store("reconcile"), repair=repair)

    async def rebuild_cache(self, *, force: bool = False) -> RebuildReport:
        """Hybrid mode: rebuild Redis (balances, leaderboard, supply, holds, recent history) from PostgreSQL,
        e.g. after Redis lost its data. Refuses while Redis still holds the token unless ``force``."""
        from tokenbank.storage.hybrid.rebuild import rebuild_cache

        return await rebuild_cache(self._hybrid_store("rebuild-cache"), force=force)

    def _hybrid_store(self, what: str) -> HybridStorage:
        from tokenbank.storage.hybrid.backend import HybridStorage

        if not isinstance(self.storage, HybridStorage):
            raise ConfigurationError(f"TOKEN_STORAGE_MODE: {what} works on the two stores of hybrid mode")
        return self.storage

    # audit and verification --------------------------------------------------------------------------------
    async def get_audit_log(self, limit: int = 50, before_id: int | None = None) -> list[AuditEntry]:
        """Audit entries (mints, burns, reversals, imports, configuration), newest first."""
        check_page(limit, 0)
        if before_id is not None and (isinstance(before_id, bool) or not isinstance(before_id, int) or before_id < 1):
            raise InvalidRequestError("before_id must be a positive integer")
        return [
            AuditEntry(r.id, r.action, json.loads(r.details), r.timestamp)
            for r in await self.storage.audit_log(limit, before_id)
        ]

    async def verify(self) -> VerifyReport:
        """Check the ledger invariants in the store (conservation, supply, no negatives, journal replay)."""
        return VerifyReport([Check(c.name, c.ok, c.detail) for c in await self.storage.verify()])

    # events ------------------------------------------------------------------------------------------------
    async def _start_event_feed(self) -> None:
        """Listen to the store's cross-process feed, or dispatch our own writes if it has none."""
        if not self.settings.enable_notifications:
            raise ConfigurationError("TOKEN_ENABLE_NOTIFICATIONS: balance events are disabled")
        async with self._event_lock:
            if self._event_feed is None and not self._local_events:
                self._event_feed = await self.storage.listen(self._events.dispatch)
                self._local_events = self._event_feed is None

    # plumbing ----------------------------------------------------------------------------------------------
    def _require_leaderboard(self) -> None:
        if not self.settings.enable_leaderboard:
            raise ConfigurationError("TOKEN_ENABLE_LEADERBOARD: the leaderboard is disabled")

    async def _apply(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[OpResult]:
        """The one path of every write to the store: metrics, events and logs happen here."""
        started = time.perf_counter()
        try:
            results = await self.storage.apply(ops, atomic=atomic)
        except StorageError as exc:
            logger.error("storage failure: %s", exc, extra={"operation": ops[0].kind.value, "count": len(ops)})
            if self._metrics is not None:
                for op in ops:
                    self._metrics.observe(op.kind.value, exc.code, time.perf_counter() - started)
            raise
        elapsed = time.perf_counter() - started
        if self._metrics is not None:
            for op, result in zip(ops, results, strict=True):
                outcome = "ok" if result.status.ok else STATUS_TO_ERROR[result.status].code
                self._metrics.observe(op.kind.value, outcome, elapsed)
        if self._local_events and self._events.active:
            for result in results:
                if result.status is Status.OK:
                    for tx in result.transactions:
                        self._events.dispatch(tx)
        if logger.isEnabledFor(logging.DEBUG):
            for op, result in zip(ops, results, strict=True):
                logger.debug(
                    "%s %s", op.kind.value, result.status.name,
                    extra={"operation": op.kind.value, "from_user_id": op.from_user_id, "to_user_id": op.to_user_id,
                           "amount": op.amount, "transaction_id": op.tx_id, "status": result.status.name,
                           "latency_ms": round(elapsed * 1000, 3)},
                )  # fmt: skip
        return results

    async def _apply_one(self, op: WriteOp) -> OpResult:
        [result] = await self._apply([op])
        if not result.status.ok:
            error = error_for(result.status)
            logger.info(
                "%s refused: %s", op.kind.value, error.code, extra={"operation": op.kind.value, "code": error.code}
            )
            raise error
        return result

    def _transaction(self, result: OpResult, op: WriteOp | None = None) -> Transaction:
        tx = convert.transaction(result.transactions[0], self.decimals)
        return replace(tx, replayed=True) if _replayed(op, result) else tx

    def _hold(self, result: OpResult, op: WriteOp | None = None) -> Hold:
        assert result.hold is not None
        hold = convert.hold(result.hold, self.decimals)
        return replace(hold, replayed=True) if _replayed(op, result) else hold


def _replayed(op: WriteOp | None, result: OpResult) -> bool:
    """An idempotent replay: the key matched an earlier write. A store also answers REPLAYED to a resend of this
    very op (its first reply was lost), which keeps the op's own transaction id and is a first write."""
    if op is None or result.status is not Status.REPLAYED or not result.transactions:
        return False
    return result.transactions[0].id != op.tx_id
