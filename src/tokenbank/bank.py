"""The TokenBank facade: lifecycle, and thin public methods over the ledger core and its services.

Every write is validated into one op by :class:`~tokenbank.operations.OpBuilder` and applied by
:class:`~tokenbank.ledger.Ledger` in ONE store call, whose status becomes a result or an error.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from tokenbank import convert
from tokenbank.amounts import AmountInput
from tokenbank.clock import SYSTEM_CLOCK, Clock
from tokenbank.errors import ConfigurationError, HoldNotFoundError, InvalidRequestError, TokenBankError, blame
from tokenbank.health import HealthReport, check_health
from tokenbank.ids import check_lookup_id
from tokenbank.ledger import Ledger
from tokenbank.logs import use_json_logs
from tokenbank.lots import LotsService
from tokenbank.metrics import Metrics, metrics_available
from tokenbank.models import (
    AccountInfo,
    AuditEntry,
    BalanceDetail,
    Check,
    Hold,
    Holder,
    Lot,
    SettingDrift,
    Stake,
    TokenInfo,
    Transaction,
    TransferRequest,
    TransferResult,
    VerifyReport,
    Vesting,
)
from tokenbank.operations import check_page
from tokenbank.services.accounts import AccountsService
from tokenbank.services.balances import BalancesService
from tokenbank.services.chain import ChainService
from tokenbank.services.formatter import FormatterService
from tokenbank.services.pricing import PriceProvider, PricingService
from tokenbank.services.transactions import TransactionsService
from tokenbank.settings import Settings
from tokenbank.staking import StakingService
from tokenbank.storage.base import Storage
from tokenbank.storage.capabilities import LotStore, SyncOperations
from tokenbank.token_config import UNSET, Unset
from tokenbank.tracing import instrument

if TYPE_CHECKING:
    from tokenbank.events import EventHub
    from tokenbank.services.analytics import AnalyticsService
    from tokenbank.services.feed import EventsService
    from tokenbank.services.monitors import MonitorsService
    from tokenbank.services.webhooks import WebhooksService
    from tokenbank.storage.hybrid.reports import RebuildReport, ReconcileReport

logger = logging.getLogger("tokenbank")

_STOP_WAIT = 5.0


class TokenBank:
    """An in-app token ledger. Use as ``async with TokenBank(Settings(...)) as bank:``.

    ``clock``: where the bank's time comes from (default: the real UTC clock); tests pass a
    :class:`tokenbank.testing.ManualClock` to expire holds without waiting (see :mod:`tokenbank.clock`)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        storage: Storage | None = None,
        price_provider: PriceProvider | None = None,
        clock: Clock | None = None,
        **overrides: Any,
    ) -> None:
        if settings is None:
            settings = Settings.load(**overrides)
        given = settings.model_fields_set | overrides.keys()
        if overrides:
            settings = Settings.load(**{**settings.model_dump(), **overrides})
        self.settings = settings
        if settings.log_format == "json":
            use_json_logs()
        self.ledger = Ledger(settings, given=frozenset(given), storage=storage, clock=clock or SYSTEM_CLOCK)
        """The ledger core the services share: store, token cache, write pipeline, events."""
        self._sweeper: asyncio.Task[None] | None = None
        self._open = False
        self.formatter = FormatterService(settings)
        self.ledger.on_token(lambda token: self.formatter.use_emoji(token.emoji))
        self.pricing = PricingService(self.ledger, price_provider)
        self.balances = BalancesService(self.ledger, self.formatter, self.pricing)
        self.transactions = TransactionsService(self.ledger)
        self.chain = ChainService(self.ledger)
        self.accounts = AccountsService(self.ledger)
        self._staking = StakingService(self.ledger)
        self._lots = LotsService(self.ledger)
        self._metrics: Metrics | None = Metrics.for_ledger(self.ledger) if metrics_available() else None
        self.ledger.observer = self._metrics

    @classmethod
    def from_env(cls, **overrides: Any) -> TokenBank:
        """A bank configured from the environment (``TOKEN_*``, ``DATABASE_URL``, ``REDIS_URL``)."""
        return cls(Settings.load(**overrides))

    @functools.cached_property
    def analytics(self) -> AnalyticsService:
        """Volumes, active accounts, distributions, supply over time (SQL stores). Imported on first use, so
        a bank that never asks for analytics does not load the SQL machinery."""
        from tokenbank.services.analytics import AnalyticsService

        return AnalyticsService(self.ledger)

    @functools.cached_property
    def events(self) -> EventsService:
        """The ledger feed and durable consumers (every committed transaction in seq order; see docs/events.md).
        Not the live balance callbacks, which stay on :attr:`balances`."""
        from tokenbank.services.feed import EventsService

        return EventsService(self.ledger)

    @functools.cached_property
    def webhooks(self) -> WebhooksService:
        """Webhook endpoints, deliveries and dead letters (delivered by ``tokenbank worker``)."""
        from tokenbank.services.webhooks import WebhooksService

        return WebhooksService(self.ledger, self.events.state)

    @functools.cached_property
    def monitors(self) -> MonitorsService:
        """Balance monitors and their ``balance.threshold`` events."""
        from tokenbank.services.monitors import MonitorsService

        return MonitorsService(self.ledger, self.events.state)

    # lifecycle ---------------------------------------------------------------------------------------------
    @property
    def storage(self) -> Storage:
        return self.ledger.storage

    @property
    def decimals(self) -> int:
        return self.settings.decimals

    @property
    def clock(self) -> Clock:
        """Where the bank's time comes from: hold expiry, the expiry sweep, and (any clock but the real one)
        the time every write is stamped with."""
        return self.ledger.clock

    @property
    def given_settings(self) -> frozenset[str]:
        """The ``Settings`` fields given by argument or environment (the others are defaults); only these are
        compared with the stored token."""
        return self.ledger.given_settings

    @property
    def settings_drift(self) -> tuple[SettingDrift, ...]:
        """Given settings that disagree with the stored token, found when the bank last read it: they were
        ignored (logged once each at open, and listed by :meth:`health`)."""
        return self.ledger.settings_drift

    @property
    def is_open(self) -> bool:
        """Between a successful :meth:`open` and :meth:`close`."""
        return self._open

    @property
    def token_created(self) -> bool:
        """True if this bank's :meth:`open` (or :meth:`initialize_token`) created the token."""
        return self.ledger.token_created

    @property
    def _events(self) -> EventHub:
        return self.ledger.events

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
                self.ledger.adopt(await self.ledger.read_token())
        except BaseException:
            await self.storage.close()  # release connections of a half-opened store
            raise
        self._open = True
        if self.settings.background == "inline" and self.settings.hold_sweep_interval > 0 and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_holds_forever(), name="tokenbank-hold-sweeper")

    async def close(self) -> None:
        self._open = False
        if self._sweeper is not None:
            self._sweeper.cancel()
            # Bounded: closing must not hang on a store call that ignores cancellation (seen once in CI).
            _, pending = await asyncio.wait({self._sweeper}, timeout=_STOP_WAIT)
            if pending:
                logger.warning("hold sweeper did not stop within %s s", _STOP_WAIT, extra={"operation": "close"})
            self._sweeper = None
        await self.ledger.stop_events()
        if self.ledger.storage_built:
            await self.storage.close()

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
        return await self.ledger.initialize_token()

    async def configure_token(
        self,
        *,
        name: str | Unset = UNSET,
        emoji: str | Unset | None = UNSET,
        max_supply: AmountInput | Unset | None = UNSET,
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
        return await self.ledger.configure_token(
            name=name, emoji=emoji, max_supply=max_supply, treasury_account=treasury_account,
            leaderboard_exclude=leaderboard_exclude,
        )  # fmt: skip

    async def get_token_info(self) -> TokenInfo:
        """The token as stored (its settings) and its current total supply. Raises TokenNotInitializedError."""
        return await self.ledger.get_token_info()

    async def get_total_supply(self) -> Decimal:
        return (await self.get_token_info()).total_supply

    async def get_circulating_supply(self) -> Decimal:
        """Total supply minus what the token's leaderboard exclusions (the treasury by default) hold, held
        funds included. Raises TokenNotInitializedError."""
        return await self.ledger.circulating_supply()

    # balances and leaderboard ------------------------------------------------------------------------------
    async def get_balance(self, user_id: str) -> Decimal:
        """Spendable balance (held funds excluded). Raises InvalidAccountError, TokenNotInitializedError."""
        return await self.ledger.get_balance(user_id)

    async def get_balances(self, user_ids: Sequence[str]) -> dict[str, Decimal]:
        return await self.balances.get_balances(user_ids)

    async def get_held_balance(self, user_id: str) -> Decimal:
        """Funds reserved by the account's pending holds."""
        return await self.balances.get_held_balance(user_id)

    async def get_top_holders(self, limit: int = 10, offset: int = 0) -> list[Holder]:
        """Highest balances first (the token's excluded accounts left out). Raises InvalidRequestError for bad
        paging, ConfigurationError (leaderboard disabled), TokenNotInitializedError."""
        return await self.balances.get_top_holders(limit, offset)

    async def get_rank(self, user_id: str) -> int | None:
        """1-based leaderboard position; None for excluded accounts and accounts without balance."""
        return await self.balances.get_rank(user_id)

    async def get_balance_at(self, user_id: str, at: datetime) -> Decimal:
        """Spendable balance right after the last transaction at or before ``at`` (an aware datetime)."""
        return await self.balances.get_balance_at(user_id, at)

    # writes ------------------------------------------------------------------------------------------------
    async def transfer(
        self,
        from_user_id: str,
        to_user_id: str,
        amount: AmountInput,
        *,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> Transaction:
        """Move ``amount`` between accounts, atomically. Raises InvalidAmountError, InvalidAccountError,
        InsufficientBalanceError, IdempotencyConflictError, StorageError."""
        return await self.ledger.write(
            self.ledger.ops.transfer(from_user_id, to_user_id, amount, idempotency_key, metadata, reason)
        )

    async def mint(
        self,
        to_user_id: str,
        amount: AmountInput,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Transaction:
        """Create new tokens (audited). Raises SupplyCapExceededError past TOKEN_MAX_SUPPLY."""
        return await self.ledger.write(self.ledger.ops.mint(to_user_id, amount, idempotency_key, metadata, reason))

    async def burn(
        self,
        user_id: str,
        amount: AmountInput,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Transaction:
        """Destroy tokens from an account (audited). Raises InsufficientBalanceError."""
        return await self.ledger.write(self.ledger.ops.burn(user_id, amount, idempotency_key, metadata, reason))

    async def hold(
        self,
        from_user_id: str,
        to_user_id: str,
        amount: AmountInput,
        *,
        expires_in: float | timedelta,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> Hold:
        """Reserve funds for a later capture or void (two-phase transfer); held funds are not spendable.
        Raises InsufficientBalanceError, InvalidRequestError (bad expiry) and the transfer errors."""
        ops = self.ledger.ops
        return await self.ledger.write_hold(
            ops.hold(from_user_id, to_user_id, amount, expires_in, idempotency_key, metadata, reason)
        )

    async def capture(self, hold_id: str, amount: AmountInput | None = None, *, reason: str | None = None) -> Hold:
        """Pay out a pending hold, all or part; a partial capture releases the rest to the sender.
        Raises HoldNotFoundError, HoldStateError (captured, voided or expired; a stake), InvalidAmountError."""
        op = self.ledger.ops.capture(hold_id, amount, reason)
        await self._staking.refuse_stake_settlement(hold_id)
        return await self.ledger.write_hold(op)

    async def void(self, hold_id: str, *, reason: str | None = None) -> Hold:
        """Release a pending (or expired) hold back to the sender. Raises HoldNotFoundError, HoldStateError (also
        for a stake: :meth:`unstake` releases it)."""
        op = self.ledger.ops.void(hold_id, reason)
        await self._staking.refuse_stake_settlement(hold_id)
        return await self.ledger.write_hold(op)

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
        """Lock ``amount`` of the account's tokens until ``until`` (held out of its balance); :meth:`unstake`
        returns them then, with ``reward`` minted on top. Raises InsufficientBalanceError, InvalidRequestError,
        InvalidAmountError and the account's controls (see docs/staking.md)."""
        return await self._staking.stake(user_id, amount, until=until, reward=reward, idempotency_key=idempotency_key,
                                        metadata=metadata, reason=reason)  # fmt: skip

    async def unstake(self, stake_id: str, *, reason: str | None = None) -> Stake:
        """Release a stake at or after its unlock time: its tokens back to the owner and its reward minted, in one
        atomic write (sent again, it answers ``replayed``). Raises StakeNotFoundError, StakeLockedError (too early),
        SupplyCapExceededError (``param="reward"``)."""
        return await self._staking.unstake(stake_id, reason=reason)

    async def get_stake(self, stake_id: str) -> Stake:
        """Raises StakeNotFoundError."""
        return await self._staking.get_stake(stake_id)

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
        """Credit ``amount`` as a lot, spendable from ``available_at`` until ``expires_at`` (see docs/lots.md);
        minted from the supply, or funded by ``from_user_id``. Raises InvalidRequestError, InvalidAmountError,
        SupplyCapExceededError, InsufficientBalanceError and the accounts' controls."""
        return await self._lots.grant(to_user_id, amount, expires_at=expires_at, available_at=available_at,
                                      category=category, from_user_id=from_user_id, idempotency_key=idempotency_key,
                                      metadata=metadata, reason=reason)  # fmt: skip

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
        """Grant ``amount`` as lots maturing every ``interval`` from ``start`` to ``start + duration``, none before
        the ``cliff``, in one atomic write. Raises what :meth:`grant` raises."""
        return await self._lots.vest(to_user_id, amount, start=start, duration=duration, cliff=cliff,
                                     interval=interval, from_user_id=from_user_id, category=category,
                                     idempotency_key=idempotency_key, metadata=metadata, reason=reason)  # fmt: skip

    async def get_lots(self, user_id: str) -> list[Lot]:
        """The account's credit lots with something left, in spend order."""
        return await self._lots.get_lots(user_id)

    async def get_balance_detail(self, user_id: str) -> BalanceDetail:
        """Available, held, pending and expired amounts, and the account's lots."""
        return await self._lots.balance_detail(user_id)

    async def expire_lots(self, now: datetime | None = None) -> int:
        """Move what is left of every lot expired at ``now`` (default: the bank's clock) to the breakage account
        (TOKEN_BREAKAGE_ACCOUNT); returns how many lots expired. The background sweep runs it with the holds."""
        return await self._lots.expire_lots(now)

    async def get_hold(self, hold_id: str) -> Hold:
        with blame("hold_id"):
            hold_id = check_lookup_id(hold_id, "hold")
        await self.ledger.token_record()
        record = await self.storage.get_hold(hold_id)
        if record is None:
            raise HoldNotFoundError(f"hold not found: {hold_id}", param="hold_id")
        return convert.hold(record, self.decimals)

    async def expire_holds(self, now: datetime | None = None) -> int:
        """Void every pending hold past its expiry at ``now`` (default: the bank's clock); returns how many were
        voided. Runs in the background every TOKEN_HOLD_SWEEP_INTERVAL seconds while the bank is open."""
        return await self.ledger.expire_holds(now)

    async def _sweep_holds_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.hold_sweep_interval)
            try:
                await self.ledger.expire_holds()  # not the public method: no span every sweep interval
                await self.ledger.prune_spends()
                if isinstance(self.storage, LotStore):
                    await self._lots.expire_lots()
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
        return await self.ledger.write(self.ledger.ops.reverse(transaction_id, idempotency_key, metadata, reason))

    # account controls ------------------------------------------------------------------------------------
    async def get_account(self, user_id: str) -> AccountInfo:
        """The account's balances and controls (freeze, closed, limits, what its spend window has spent)."""
        return await self.accounts.get_account(user_id)

    async def freeze(
        self, user_id: str, *, debits: bool = True, credits: bool = False, reason: str, until: datetime | None = None
    ) -> AccountInfo:
        """Stop the account's debits (default), credits or both until ``until`` or :meth:`unfreeze`; writes then
        fail with AccountFrozenError. A void (or expiry) of its holds still returns held funds to it."""
        return await self.accounts.freeze(user_id, debits=debits, credits=credits, reason=reason, until=until)

    async def unfreeze(self, user_id: str) -> AccountInfo:
        """End the account's freeze."""
        return await self.accounts.unfreeze(user_id)

    async def close_account(self, user_id: str) -> AccountInfo:
        """Close an account that holds nothing, for good: later writes to or from it fail with
        AccountClosedError. Raises TransactionStateError while it holds funds."""
        return await self.accounts.close_account(user_id)

    async def set_limits(
        self,
        user_id: str,
        *,
        max_balance: AmountInput | None = None,
        spend_per_window: tuple[AmountInput, int | float | timedelta] | None = None,
        overdraft: AmountInput | None = None,
    ) -> AccountInfo:
        """Replace the account's limits (None: none): a maximum spendable balance, at most an amount spent in
        any rolling window of so many seconds, and an overdraft (debits may take the balance down to minus it).
        Writes that would break the first two fail with LimitExceededError, debits below the overdraft with
        InsufficientBalanceError."""
        return await self.accounts.set_limits(
            user_id, max_balance=max_balance, spend_per_window=spend_per_window, overdraft=overdraft
        )

    async def transfer_many(self, requests: Sequence[TransferRequest], *, atomic: bool = False) -> list[TransferResult]:
        """Apply many transfers in one store call, in order. ``atomic``: all or nothing (every item then fails,
        the culprit with its own error, the rest with BatchAbortedError). Never raises for an item's failure."""
        return await self.ledger.transfer_many(requests, atomic=atomic)

    async def transfer_split(
        self,
        from_user_id: str,
        amount: AmountInput,
        legs: Sequence[tuple[str, AmountInput]],
        *,
        remainder_to: str | None = None,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> list[Transaction]:
        """Pay ``amount`` from ``from_user_id`` to many receivers in ONE atomic store call: exactly ``amount``
        leaves the sender, or nothing moves. Each leg is ``(to_user_id, share)``, a share being an amount or a
        percentage of ``amount`` such as ``"12.5%"`` (more than 0, at most 100); at most 100 legs, one per
        receiver, none to the sender.

        Rounding, in base units: a fixed leg gets its amount; a percentage leg gets
        ``floor(amount * pct / 100)``; the ``floor(sum of exact quotas) - sum of those floors`` units still due go
        one each to the percentage legs with the largest fractional parts (ties: the earlier leg), the largest
        remainder method; whatever is left of ``amount`` goes to ``remainder_to`` (added to its leg if it has one),
        else to the first leg. A leg that comes to 0 units writes no transaction.

        Returns one ``transfer`` transaction per paid leg, in leg order (the remainder's own, if any, last), each
        with the caller's ``metadata`` plus ``"split_id"`` (the same new id on every leg, also
        ``Transaction.split_id``). With ``idempotency_key``, the n-th transaction (from 0) is keyed
        ``f"{key}:{n}"`` (a key over 124 characters is replaced by its SHA-256 hex digest first); the same request
        again returns the same transactions with ``replayed=True``, another request with the same key raises
        IdempotencyConflictError and writes nothing.

        Raises InvalidAmountError, InvalidAccountError, InvalidRequestError (``param`` names the argument, e.g.
        ``legs.2.share``; a ``split_id`` key in ``metadata`` is refused), InsufficientBalanceError (for the whole
        ``amount``), IdempotencyConflictError, StorageError; a refused leg fails the whole split with its own
        error."""
        return await self.ledger.transfer_split(
            from_user_id, amount, legs, remainder_to, idempotency_key, metadata, reason
        )

    # operations --------------------------------------------------------------------------------------------
    @property
    def metrics(self) -> Metrics:
        """Prometheus metrics of this bank (its own registry). Raises ConfigurationError without the metrics
        extra (``pip install 'tokenbank[metrics]'``)."""
        if self._metrics is None:
            self._metrics = self.ledger.observer = Metrics.for_ledger(self.ledger)
        return self._metrics

    async def health(self) -> HealthReport:
        """Store ping, token check and the store's own checks (each bounded in time); never raises for a
        failing store: the report says ``down`` or ``degraded``."""
        return await check_health(self.ledger)

    async def reconcile(self, repair: bool = False) -> ReconcileReport:
        """Hybrid mode: compare Redis with PostgreSQL account by account once the sync backlog is drained;
        ``repair`` fixes Redis from PostgreSQL (the store of record) with an audit entry. Raises
        ConfigurationError in other modes, StorageUnavailableError."""
        return await self._synced_store("reconcile").reconcile(repair=repair)

    async def rebuild_cache(self, *, force: bool = False) -> RebuildReport:
        """Hybrid mode: rebuild Redis (balances, leaderboard, supply, holds, recent history) from PostgreSQL,
        e.g. after Redis lost its data. Refuses while Redis still holds the token unless ``force``."""
        return await self._synced_store("rebuild-cache").rebuild_cache(force=force)

    def _synced_store(self, what: str) -> SyncOperations:
        if not isinstance(self.storage, SyncOperations):
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
        """Check the ledger invariants in the store (conservation, supply, no negatives, journal replay) and the
        journal's hash chain (``chain``: names the first broken seq; see ``bank.chain``)."""
        checks = [Check(c.name, c.ok, c.detail) for c in await self.storage.verify()]
        checks += [Check(r.label, r.ok, r.detail) for r in await self.chain.verify()]
        return VerifyReport(checks)


# One span per public operation when the ``otel`` extra is installed (see tokenbank/tracing.py); otherwise the
# class is left as written.
instrument(TokenBank)
