"""The blocking API: :class:`TokenBank` for synchronous code (Django, Flask, scripts, task workers).

Every coroutine method of :class:`tokenbank.TokenBank` and of its services is wrapped here, one line each, to run
on a private event loop in a daemon thread: one implementation, and one loop the bank's connection pools stay
bound to, whichever threads call it. A test checks that no public coroutine method is left out. :func:`exchange`
wraps :func:`tokenbank.exchanges.exchange` for two banks sharing one loop (``share_loop_with``).

::

    with TokenBank(Settings(database_url="sqlite+aiosqlite:///app.db")) as bank:
        bank.transfer("alice", "bob", "2.50")
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from tokenbank.amounts import AmountInput
from tokenbank.bank import TokenBank as AsyncTokenBank
from tokenbank.clock import Clock
from tokenbank.errors import ConfigurationError, InvalidRequestError
from tokenbank.events import BalanceUpdate
from tokenbank.exchanges import Rate, store_pair
from tokenbank.exchanges import exchange as async_exchange
from tokenbank.metrics import Metrics
from tokenbank.models import Exchange, SettingDrift, Transaction
from tokenbank.services.accounts import AccountsService
from tokenbank.services.analytics import AnalyticsService
from tokenbank.services.balances import BalancesService
from tokenbank.services.chain import ChainService
from tokenbank.services.feed import EventsService, Handler
from tokenbank.services.formatter import FormatterService
from tokenbank.services.monitors import MonitorsService
from tokenbank.services.pricing import PriceProvider, PricingService
from tokenbank.services.transactions import TransactionsService
from tokenbank.services.webhooks import WebhooksService
from tokenbank.settings import Settings
from tokenbank.storage.base import Storage

__all__ = [
    "BlockingAccounts",
    "BlockingAnalytics",
    "BlockingBalances",
    "BlockingChain",
    "BlockingEvents",
    "BlockingMonitors",
    "BlockingPricing",
    "BlockingTransactions",
    "BlockingWebhooks",
    "TokenBank",
    "exchange",
]

logger = logging.getLogger("tokenbank")

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")
Y = TypeVar("Y")

_STOP_WAIT = 10.0

SyncBalanceCallback = Callable[[BalanceUpdate], object]
"""A balance event callback of the blocking API: called on the bank's event thread, in commit order."""


class _LoopThread:
    """An event loop running forever in a daemon thread; :meth:`run` calls into it from any other thread.

    Daemon, so a bank nobody closed never keeps the interpreter from exiting (a thread pool's worker would be
    joined at exit, before ``atexit`` handlers get the chance to close it)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._closed = False
        self._lock = threading.Lock()
        self._banks = 0
        self._thread = threading.Thread(target=self._serve, name="tokenbank-loop", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def run(self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` on the loop and wait for the result; its exception is raised here.
        Raises RuntimeError once stopped, or when called from the loop's own thread (that would wait for itself
        forever)."""

        async def call() -> R:
            return await fn(*args, **kwargs)

        return self._submit(call)

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the plain function ``fn`` on the loop (for what must happen on the loop's thread) and wait."""

        async def call() -> R:
            return fn(*args, **kwargs)

        return self._submit(call)

    def _submit(self, call: Callable[[], Coroutine[Any, Any, R]]) -> R:
        if self._closed:
            raise RuntimeError("this blocking TokenBank is closed")
        if threading.current_thread() is self._thread:
            raise RuntimeError("a blocking TokenBank method was called on its own event loop thread")
        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # KeyboardInterrupt while waiting: do not leave the call running unseen
            raise

    def enter(self) -> _BankLoop | None:
        """One more bank's handle on this loop; None once the loop has stopped (its last bank closed)."""
        with self._lock:
            if self._closed:
                return None
            self._banks += 1
        return _BankLoop(self)

    def leave(self) -> None:
        """A bank is done with the loop: the last one stops it."""
        with self._lock:
            self._banks -= 1
            # Decided under the lock, so no bank can enter a loop that is about to stop.
            if self._banks > 0 or self._closed:
                return
            self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(_STOP_WAIT)


class _BankLoop:
    """One blocking bank's use of a loop thread, which other banks may share (``share_loop_with``): each bank
    closes on its own, and the loop stops when the last of them closes."""

    def __init__(self, thread: _LoopThread) -> None:
        self.thread = thread
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed or self.thread.closed

    def run(self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """The loop thread's ``run``; also RuntimeError once this bank is closed."""
        self._check()
        return self.thread.run(fn, *args, **kwargs)

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """The loop thread's ``call``; also RuntimeError once this bank is closed."""
        self._check()
        return self.thread.call(fn, *args, **kwargs)

    def _check(self) -> None:
        if self._closed:
            raise RuntimeError("this blocking TokenBank is closed")

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.thread.leave()


class _Wrapper(Generic[S]):
    """A blocking view of one async object: its coroutine methods run on the owner's loop thread."""

    def __init__(self, target: S, loop: _BankLoop) -> None:
        self._target = target
        self._loop = loop


class _Method(Generic[S, P, R]):
    """Descriptor: the blocking twin of the async method ``method`` (signature, docs and errors the same)."""

    def __init__(self, method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]]) -> None:
        self._method = method
        self.__wrapped__ = method  # inspect.signature and help() show the async method's
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: _Wrapper[S], owner: type[Any]) -> Callable[P, R]: ...
    def __get__(self, obj: _Wrapper[S] | None, owner: type[Any]) -> Self | Callable[P, R]:
        if obj is None:
            return self
        target, loop, method = obj._target, obj._loop, self._method

        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            return loop.run(method, target, *args, **kwargs)

        return call


class _Iterator(Generic[S, P, Y]):
    """Descriptor: an async generator method as a blocking iterator (each step one round trip to the loop)."""

    def __init__(self, method: Callable[Concatenate[S, P], AsyncIterator[Y]]) -> None:
        self._method = method
        self.__wrapped__ = method  # inspect.signature and help() show the async method's
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: _Wrapper[S], owner: type[Any]) -> Callable[P, Iterator[Y]]: ...
    def __get__(self, obj: _Wrapper[S] | None, owner: type[Any]) -> Self | Callable[P, Iterator[Y]]:
        if obj is None:
            return self
        target, loop, method = obj._target, obj._loop, self._method

        @functools.wraps(method)
        def iterate(*args: P.args, **kwargs: P.kwargs) -> Iterator[Y]:
            agen = loop.call(method, target, *args, **kwargs)
            try:
                while True:
                    try:
                        yield loop.run(agen.__anext__)
                    except StopAsyncIteration:
                        return
            finally:
                if not loop.closed:
                    loop.run(_aclose, agen)

        return iterate


async def _aclose(agen: AsyncIterator[Any]) -> None:
    close = getattr(agen, "aclose", None)
    if close is not None:
        await close()


class _EventThread:
    """Runs balance event callbacks one at a time, in order, on a thread of their own: a slow callback never
    stalls the bank's loop, and a callback may call the blocking bank itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._relays: dict[tuple[str, SyncBalanceCallback], list[Callable[[BalanceUpdate], None]]] = {}

    def relay(self, user_id: str, callback: SyncBalanceCallback) -> Callable[[BalanceUpdate], None]:
        """The loop-side callback handing each update over to ``callback`` on the event thread."""
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tokenbank-events")
            executor = self._executor

        def hand_over(update: BalanceUpdate) -> None:
            try:
                executor.submit(_deliver, callback, update)
            except RuntimeError:  # the bank is closing: nobody is left to tell
                logger.debug("balance event dropped at close", extra={"user_id": update.user_id})

        with self._lock:
            self._relays.setdefault((user_id, callback), []).append(hand_over)
        return hand_over

    def forget(
        self, user_id: str, callback: SyncBalanceCallback | None = None
    ) -> list[Callable[[BalanceUpdate], None]]:
        """Drop and return the relays of ``callback`` on the account (of every callback, if None)."""
        with self._lock:
            keys = [key for key in self._relays if key[0] == user_id and callback in (None, key[1])]
            return [relay for key in keys for relay in self._relays.pop(key)]

    def discard(self, user_id: str, callback: SyncBalanceCallback, relay: Callable[[BalanceUpdate], None]) -> None:
        with self._lock:
            relays = self._relays.get((user_id, callback), [])
            if relay in relays:
                relays.remove(relay)

    def shutdown(self) -> None:
        """Stop the event thread once the callbacks already handed over have run."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            # Closing the bank from inside a callback must not wait for that very callback.
            executor.shutdown(wait=not threading.current_thread().name.startswith("tokenbank-events"))


def _deliver(callback: SyncBalanceCallback, update: BalanceUpdate) -> None:
    try:
        callback(update)
    except Exception:
        logger.exception("balance event callback failed", extra={"user_id": update.user_id})


class BlockingBalances(_Wrapper[BalancesService]):
    """:class:`~tokenbank.services.balances.BalancesService`, blocking. Balance event callbacks are called on
    the bank's event thread (an async callback runs on the bank's loop instead)."""

    def __init__(self, target: BalancesService, loop: _BankLoop, events: _EventThread) -> None:
        super().__init__(target, loop)
        self._events = events

    get_balance = _Method(BalancesService.get_balance)
    get_balances = _Method(BalancesService.get_balances)
    get_held_balance = _Method(BalancesService.get_held_balance)
    get_top_holders = _Method(BalancesService.get_top_holders)
    get_rank = _Method(BalancesService.get_rank)
    get_balance_at = _Method(BalancesService.get_balance_at)
    # Its **overrides could take a keyword named "self": it fits Concatenate[...] only with the parameters left open.
    get_formatted_balance: _Method[BalancesService, ..., str] = _Method(BalancesService.get_formatted_balance)
    get_balance_in_usd = _Method(BalancesService.get_balance_in_usd)

    def subscribe_to_balance_updates(self, user_id: str, callback: SyncBalanceCallback) -> Callable[[], None]:
        """Call ``callback(BalanceUpdate)`` after each committed change of the account's balance (see the async
        method); returns a function that removes this one subscription. Raises ConfigurationError when
        TOKEN_ENABLE_NOTIFICATIONS is off, InvalidAccountError."""
        if inspect.iscoroutinefunction(callback):
            remove_async = self._loop.run(self._target.subscribe_to_balance_updates, user_id, callback)
            return lambda: self._loop.call(remove_async)
        relay = self._events.relay(user_id, callback)
        try:
            remove = self._loop.run(self._target.subscribe_to_balance_updates, user_id, relay)
        except BaseException:
            self._events.discard(user_id, callback, relay)
            raise

        def unsubscribe() -> None:
            self._events.discard(user_id, callback, relay)
            self._loop.call(remove)

        return unsubscribe

    def unsubscribe_from_balance_updates(self, user_id: str, callback: SyncBalanceCallback | None = None) -> None:
        """Remove the account's subscriptions (only ``callback``'s, if given). Raises InvalidAccountError."""
        relays = self._events.forget(user_id, callback)
        if callback is None:
            self._loop.run(self._target.unsubscribe_from_balance_updates, user_id)
            return
        subscribed: list[Any] = [*relays] or [callback]  # an async callback was subscribed as itself
        for relay in subscribed:
            self._loop.run(self._target.unsubscribe_from_balance_updates, user_id, relay)


class BlockingTransactions(_Wrapper[TransactionsService]):
    """:class:`~tokenbank.services.transactions.TransactionsService`, blocking."""

    get_transaction_history = _Method(TransactionsService.get_transaction_history)
    get_transaction_by_id = _Method(TransactionsService.get_transaction_by_id)
    record_transaction = _Method(TransactionsService.record_transaction)


class BlockingAccounts(_Wrapper[AccountsService]):
    """:class:`~tokenbank.services.accounts.AccountsService` (freezes, closing, limits), blocking."""

    get_account = _Method(AccountsService.get_account)
    freeze = _Method(AccountsService.freeze)
    unfreeze = _Method(AccountsService.unfreeze)
    close_account = _Method(AccountsService.close_account)
    set_limits = _Method(AccountsService.set_limits)


class BlockingChain(_Wrapper[ChainService]):
    """:class:`~tokenbank.services.chain.ChainService`, blocking."""

    seal = _Method(ChainService.seal)
    verify = _Method(ChainService.verify)
    checkpoint = _Method(ChainService.checkpoint)
    checkpoints = _Method(ChainService.checkpoints)
    proof = _Method(ChainService.proof)


def _off_the_loop(handler: Handler) -> Handler:
    """A plain handler runs on a worker thread, so it may block and call the blocking bank itself; an async
    one runs on the bank's loop."""
    if inspect.iscoroutinefunction(handler):
        return handler

    async def run(tx: Transaction) -> None:
        await asyncio.to_thread(handler, tx)

    return run


class BlockingEvents(_Wrapper[EventsService]):
    """:class:`~tokenbank.services.feed.EventsService` (the durable ledger feed), blocking. A plain handler runs
    on a worker thread, one transaction at a time, in seq order."""

    read = _Method(EventsService.read)
    cursor = _Method(EventsService.cursor)

    def consume_once(self, name: str, handler: Handler, *, batch: int = 100) -> int:
        """See the async method: one batch after the consumer's cursor; how many were handled."""
        return self._loop.run(self._target.consume_once, name, _off_the_loop(handler), batch=batch)

    def consume(
        self,
        name: str,
        handler: Handler,
        *,
        batch: int = 100,
        poll_interval: float = 0.5,
        max_batches: int | None = None,
    ) -> int:
        """See the async method: blocks until ``max_batches`` (or Ctrl-C, which stops the consumer)."""
        return self._loop.run(
            self._target.consume,
            name,
            _off_the_loop(handler),
            batch=batch,
            poll_interval=poll_interval,
            max_batches=max_batches,
        )


class BlockingWebhooks(_Wrapper[WebhooksService]):
    """:class:`~tokenbank.services.webhooks.WebhooksService`, blocking."""

    add = _Method(WebhooksService.add)
    list = _Method(WebhooksService.list)
    remove = _Method(WebhooksService.remove)
    deliveries = _Method(WebhooksService.deliveries)
    attempts = _Method(WebhooksService.attempts)
    redeliver = _Method(WebhooksService.redeliver)
    run_once = _Method(WebhooksService.run_once)


class BlockingMonitors(_Wrapper[MonitorsService]):
    """:class:`~tokenbank.services.monitors.MonitorsService`, blocking."""

    add = _Method(MonitorsService.add)
    list = _Method(MonitorsService.list)
    remove = _Method(MonitorsService.remove)
    events = _Method(MonitorsService.events)


class BlockingPricing(_Wrapper[PricingService]):
    """:class:`~tokenbank.services.pricing.PricingService`, blocking."""

    get_usd_price = _Method(PricingService.get_usd_price)
    to_usd = _Method(PricingService.to_usd)
    get_balance_in_usd = _Method(PricingService.get_balance_in_usd)


class BlockingAnalytics(_Wrapper[AnalyticsService]):
    """:class:`~tokenbank.services.analytics.AnalyticsService` (SQL stores), blocking."""

    get_volume = _Method(AnalyticsService.get_volume)
    get_active_accounts = _Method(AnalyticsService.get_active_accounts)
    get_top_senders = _Method(AnalyticsService.get_top_senders)
    get_top_receivers = _Method(AnalyticsService.get_top_receivers)
    get_balance_distribution = _Method(AnalyticsService.get_balance_distribution)
    get_supply_over_time = _Method(AnalyticsService.get_supply_over_time)
    get_last_seq = _Method(AnalyticsService.get_last_seq)
    count_transactions = _Method(AnalyticsService.count_transactions)
    iter_transaction_chunks = _Iterator(AnalyticsService.iter_transaction_chunks)


class TokenBank(_Wrapper[AsyncTokenBank]):
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
        self._events = _EventThread()
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
    open = _Method(AsyncTokenBank.open)

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
    initialize_token = _Method(AsyncTokenBank.initialize_token)
    configure_token = _Method(AsyncTokenBank.configure_token)
    get_token_info = _Method(AsyncTokenBank.get_token_info)
    get_total_supply = _Method(AsyncTokenBank.get_total_supply)
    get_circulating_supply = _Method(AsyncTokenBank.get_circulating_supply)
    get_balance = _Method(AsyncTokenBank.get_balance)
    get_balances = _Method(AsyncTokenBank.get_balances)
    get_held_balance = _Method(AsyncTokenBank.get_held_balance)
    get_top_holders = _Method(AsyncTokenBank.get_top_holders)
    get_rank = _Method(AsyncTokenBank.get_rank)
    get_balance_at = _Method(AsyncTokenBank.get_balance_at)
    transfer = _Method(AsyncTokenBank.transfer)
    mint = _Method(AsyncTokenBank.mint)
    burn = _Method(AsyncTokenBank.burn)
    hold = _Method(AsyncTokenBank.hold)
    capture = _Method(AsyncTokenBank.capture)
    void = _Method(AsyncTokenBank.void)
    get_hold = _Method(AsyncTokenBank.get_hold)
    expire_holds = _Method(AsyncTokenBank.expire_holds)
    reverse = _Method(AsyncTokenBank.reverse)
    get_account = _Method(AsyncTokenBank.get_account)
    freeze = _Method(AsyncTokenBank.freeze)
    unfreeze = _Method(AsyncTokenBank.unfreeze)
    close_account = _Method(AsyncTokenBank.close_account)
    set_limits = _Method(AsyncTokenBank.set_limits)
    transfer_many = _Method(AsyncTokenBank.transfer_many)
    transfer_split = _Method(AsyncTokenBank.transfer_split)
    health = _Method(AsyncTokenBank.health)
    reconcile = _Method(AsyncTokenBank.reconcile)
    rebuild_cache = _Method(AsyncTokenBank.rebuild_cache)
    get_audit_log = _Method(AsyncTokenBank.get_audit_log)
    verify = _Method(AsyncTokenBank.verify)


def _loop_for(share_loop_with: object) -> _BankLoop:
    """A new bank's handle: on a loop thread of its own, or on ``share_loop_with``'s. Raises ConfigurationError."""
    if share_loop_with is None:
        loop = _LoopThread().enter()
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


def exchange(
    pay: tuple[TokenBank, str, AmountInput | None],
    receive: tuple[TokenBank, str, AmountInput | None],
    *,
    rate: Rate | None = None,
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
    reason: str | None = None,
) -> Exchange:
    """:func:`tokenbank.exchanges.exchange` for blocking banks, with the same arguments, rules, result and
    errors: ``pay=(coins, user_id, amount_a)``, ``receive=(gems, counterparty_id, amount_b)``.

    The exchange uses both banks' connections in one call, and a bank's connections belong to its event loop,
    so both banks must run on one: make the second with ``TokenBank(..., share_loop_with=first)``. An async
    ``rate`` provider is awaited on that loop.

    Raises what :func:`tokenbank.exchanges.exchange` raises; InvalidRequestError also for a side whose bank is not
    an open blocking TokenBank; ConfigurationError also for two banks on different event loops (after the check
    that they share one store, whose error comes first: sharing a loop would not help them)."""
    bank_a, user, amount_a = _blocking_side(pay, "pay")
    bank_b, counterparty, amount_b = _blocking_side(receive, "receive")
    if bank_a._loop.thread is not bank_b._loop.thread:
        store_pair(bank_a.async_bank, bank_b.async_bank)
        raise ConfigurationError(
            f"exchange between {bank_a.settings.symbol} and {bank_b.settings.symbol}: the blocking banks run on "
            "different event loops; make the second with TokenBank(..., share_loop_with=<the first>)"
        )
    return bank_a._loop.run(
        async_exchange, (bank_a.async_bank, user, amount_a), (bank_b.async_bank, counterparty, amount_b),
        rate=rate, idempotency_key=idempotency_key, metadata=metadata, reason=reason,
    )  # fmt: skip


def _blocking_side(side: object, name: str) -> tuple[TokenBank, Any, Any]:
    """The side's bank, account and amount (the async exchange checks the last two). Raises InvalidRequestError."""
    if isinstance(side, str | bytes) or not isinstance(side, tuple | list) or len(side) != 3:
        raise InvalidRequestError(f"{name} must be a (bank, user_id, amount) triple", param=name)
    bank, user, amount = side
    if not isinstance(bank, TokenBank):
        raise InvalidRequestError(
            f"{name}: the first item must be a blocking TokenBank (tokenbank.blocking.TokenBank), "
            f"got {type(bank).__name__}",
            param=name,
        )
    if not bank.async_bank.is_open:
        raise InvalidRequestError(
            f"{name}: the bank of {bank.settings.symbol} is not open (use it inside 'with bank', or call open())",
            param=name,
        )
    return bank, user, amount
