"""The blocking :class:`TokenBank`: the async bank built and run on a loop thread, its services wrapped."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from tokenbank.bank import TokenBank as AsyncTokenBank
from tokenbank.blocking.callbacks import EventThread
from tokenbank.blocking.loop import BankLoop, LoopThread
from tokenbank.blocking.services import (
    BlockingAccounts,
    BlockingAnalytics,
    BlockingBalances,
    BlockingChain,
    BlockingEvents,
    BlockingMonitors,
    BlockingPricing,
    BlockingTransactions,
    BlockingWebhooks,
)
from tokenbank.blocking.wrappers import BlockingMethod, BlockingWrapper
from tokenbank.clock import Clock
from tokenbank.errors import ConfigurationError
from tokenbank.metrics import Metrics
from tokenbank.models import SettingDrift
from tokenbank.services.formatter import FormatterService
from tokenbank.services.pricing import PriceProvider
from tokenbank.settings import Settings
from tokenbank.storage.base import Storage

P = ParamSpec("P")
R = TypeVar("R")


class TokenBank(BlockingWrapper[AsyncTokenBank]):
    """:class:`tokenbank.TokenBank` for synchronous code; thread-safe: share one per process.

    Use as ``with TokenBank(Settings(...)) as bank:``, or call :meth:`open` and :meth:`close`. The arguments are
    those of the async bank, plus ``share_loop_with``: another open blocking bank whose event loop this one runs
    on too, so that :func:`exchange` can use both (the loop stops when the last bank on it closes). Once closed
    it cannot be opened again. Every method raises what its async twin raises, and RuntimeError when the bank is
    closed; the constructor raises ConfigurationError for a ``share_loop_with`` that is not an open blocking
    bank."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        storage: Storage | None = None,
        price_provider: PriceProvider | None = None,
        clock: Clock | None = None,
        share_loop_with: TokenBank | None = None,
        **overrides: Any,
    ) -> None:
        loop = _loop_for(share_loop_with)
        try:
            # Built on its loop: whatever the bank creates there belongs to that loop.
            build = functools.partial(
                AsyncTokenBank, settings, storage=storage, price_provider=price_provider, clock=clock, **overrides
            )
            target = loop.call(build)
        except BaseException:
            loop.stop()
            raise
        super().__init__(target, loop)
        self._events = EventThread()
        self.balances = BlockingBalances(target.balances, loop, self._events)
        self.transactions = BlockingTransactions(target.transactions, loop)
        self.pricing = BlockingPricing(target.pricing, loop)
        self.chain = BlockingChain(target.chain, loop)
        self.accounts = BlockingAccounts(target.accounts, loop)
        self.formatter: FormatterService = target.formatter
        """Formatting is synchronous already: the async bank's formatter itself."""

    @classmethod
    def from_env(cls, **overrides: Any) -> TokenBank:
        """A bank configured from the environment (``TOKEN_*``, ``DATABASE_URL``, ``REDIS_URL``)."""
        return cls(Settings.load(**overrides))

    @functools.cached_property
    def analytics(self) -> BlockingAnalytics:
        """Volumes, active accounts, distributions, supply over time (SQL stores)."""
        return BlockingAnalytics(self._target.analytics, self._loop)

    @functools.cached_property
    def events(self) -> BlockingEvents:
        """The durable ledger feed and its named consumers."""
        return BlockingEvents(self._target.events, self._loop)

    @functools.cached_property
    def webhooks(self) -> BlockingWebhooks:
        """Webhook endpoints, their deliveries and redelivery."""
        return BlockingWebhooks(self._target.webhooks, self._loop)

    @functools.cached_property
    def monitors(self) -> BlockingMonitors:
        """Balance monitors and their threshold events."""
        return BlockingMonitors(self._target.monitors, self._loop)

    @property
    def async_bank(self) -> AsyncTokenBank:
        """The async bank underneath; use it only on this bank's loop, through :meth:`run`."""
        return self._target

    def run(self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` on the bank's event loop and return its result: for what only the async
        API offers, e.g. ``bank.run(bank.async_bank.storage.ping)``. Raises what ``fn`` raises."""
        return self._loop.run(fn, *args, **kwargs)

    # lifecycle ---------------------------------------------------------------------------------------------
    open = BlockingMethod(AsyncTokenBank.open)

    def close(self) -> None:
        """Close the async bank (connections, event feed, hold sweeper), then stop the loop and event threads.
        Idempotent."""
        if self._loop.closed:
            return
        try:
            self._loop.run(self._target.close)
        finally:
            self._events.shutdown()
            self._loop.stop()

    def __enter__(self) -> Self:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def settings(self) -> Settings:
        return self._target.settings

    @property
    def decimals(self) -> int:
        return self._target.decimals

    @property
    def given_settings(self) -> frozenset[str]:
        return self._target.given_settings

    @property
    def settings_drift(self) -> tuple[SettingDrift, ...]:
        return self._target.settings_drift

    @property
    def token_created(self) -> bool:
        return self._target.token_created

    @property
    def metrics(self) -> Metrics:
        """Prometheus metrics of this bank. Raises ConfigurationError without the metrics extra."""
        return self._target.metrics

    # the async bank's coroutine methods ----------------------------------------------------------------------
    initialize_token = BlockingMethod(AsyncTokenBank.initialize_token)
    configure_token = BlockingMethod(AsyncTokenBank.configure_token)
    get_token_info = BlockingMethod(AsyncTokenBank.get_token_info)
    get_total_supply = BlockingMethod(AsyncTokenBank.get_total_supply)
    get_circulating_supply = BlockingMethod(AsyncTokenBank.get_circulating_supply)
    get_balance = BlockingMethod(AsyncTokenBank.get_balance)
    get_balances = BlockingMethod(AsyncTokenBank.get_balances)
    get_held_balance = BlockingMethod(AsyncTokenBank.get_held_balance)
    get_top_holders = BlockingMethod(AsyncTokenBank.get_top_holders)
    get_rank = BlockingMethod(AsyncTokenBank.get_rank)
    get_balance_at = BlockingMethod(AsyncTokenBank.get_balance_at)
    transfer = BlockingMethod(AsyncTokenBank.transfer)
    mint = BlockingMethod(AsyncTokenBank.mint)
    burn = BlockingMethod(AsyncTokenBank.burn)
    hold = BlockingMethod(AsyncTokenBank.hold)
    capture = BlockingMethod(AsyncTokenBank.capture)
    void = BlockingMethod(AsyncTokenBank.void)
    get_hold = BlockingMethod(AsyncTokenBank.get_hold)
    grant = BlockingMethod(AsyncTokenBank.grant)
    vest = BlockingMethod(AsyncTokenBank.vest)
    get_lots = BlockingMethod(AsyncTokenBank.get_lots)
    get_balance_detail = BlockingMethod(AsyncTokenBank.get_balance_detail)
    expire_lots = BlockingMethod(AsyncTokenBank.expire_lots)
    stake = BlockingMethod(AsyncTokenBank.stake)
    unstake = BlockingMethod(AsyncTokenBank.unstake)
    get_stake = BlockingMethod(AsyncTokenBank.get_stake)
    expire_holds = BlockingMethod(AsyncTokenBank.expire_holds)
    reverse = BlockingMethod(AsyncTokenBank.reverse)
    get_account = BlockingMethod(AsyncTokenBank.get_account)
    freeze = BlockingMethod(AsyncTokenBank.freeze)
    unfreeze = BlockingMethod(AsyncTokenBank.unfreeze)
    close_account = BlockingMethod(AsyncTokenBank.close_account)
    set_limits = BlockingMethod(AsyncTokenBank.set_limits)
    transfer_many = BlockingMethod(AsyncTokenBank.transfer_many)
    transfer_split = BlockingMethod(AsyncTokenBank.transfer_split)
    health = BlockingMethod(AsyncTokenBank.health)
    reconcile = BlockingMethod(AsyncTokenBank.reconcile)
    rebuild_cache = BlockingMethod(AsyncTokenBank.rebuild_cache)
    get_audit_log = BlockingMethod(AsyncTokenBank.get_audit_log)
    verify = BlockingMethod(AsyncTokenBank.verify)


def _loop_for(share_loop_with: object) -> BankLoop:
    """A new bank's handle: on a loop thread of its own, or on ``share_loop_with``'s. Raises ConfigurationError."""
    if share_loop_with is None:
        loop = LoopThread().enter()
        assert loop is not None
        return loop
    if not isinstance(share_loop_with, TokenBank):
        raise ConfigurationError(
            "share_loop_with: must be a blocking bank (tokenbank.blocking.TokenBank), "
            f"got {type(share_loop_with).__name__}"
        )
    loop = None if share_loop_with._loop.closed else share_loop_with._loop.thread.enter()
    if loop is None:
        raise ConfigurationError("share_loop_with: that bank is closed; only an open bank's loop can be shared")
    return loop
