"""The blocking twins of the bank's services: one line per coroutine method, plus the few methods whose
callbacks must leave the event loop (balance subscriptions, feed consumers)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from tokenbank.blocking.callbacks import EventThread, SyncBalanceCallback
from tokenbank.blocking.loop import BankLoop
from tokenbank.blocking.wrappers import BlockingIterator, BlockingMethod, BlockingWrapper
from tokenbank.models import Transaction
from tokenbank.services.accounts import AccountsService
from tokenbank.services.analytics import AnalyticsService
from tokenbank.services.balances import BalancesService
from tokenbank.services.chain import ChainService
from tokenbank.services.feed import EventsService, Handler
from tokenbank.services.monitors import MonitorsService
from tokenbank.services.pricing import PricingService
from tokenbank.services.transactions import TransactionsService
from tokenbank.services.webhooks import WebhooksService


class BlockingBalances(BlockingWrapper[BalancesService]):
    """:class:`~tokenbank.services.balances.BalancesService`, blocking. Balance event callbacks are called on
    the bank's event thread (an async callback runs on the bank's loop instead)."""

    def __init__(self, target: BalancesService, loop: BankLoop, events: EventThread) -> None:
        super().__init__(target, loop)
        self._events = events

    get_balance = BlockingMethod(BalancesService.get_balance)
    get_balances = BlockingMethod(BalancesService.get_balances)
    get_held_balance = BlockingMethod(BalancesService.get_held_balance)
    get_top_holders = BlockingMethod(BalancesService.get_top_holders)
    get_rank = BlockingMethod(BalancesService.get_rank)
    get_balance_at = BlockingMethod(BalancesService.get_balance_at)
    # Its **overrides could take a keyword named "self": it fits Concatenate[...] only with the parameters left open.
    get_formatted_balance: BlockingMethod[BalancesService, ..., str] = BlockingMethod(
        BalancesService.get_formatted_balance
    )
    get_balance_in_usd = BlockingMethod(BalancesService.get_balance_in_usd)

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


class BlockingTransactions(BlockingWrapper[TransactionsService]):
    """:class:`~tokenbank.services.transactions.TransactionsService`, blocking."""

    get_transaction_history = BlockingMethod(TransactionsService.get_transaction_history)
    get_transaction_by_id = BlockingMethod(TransactionsService.get_transaction_by_id)
    record_transaction = BlockingMethod(TransactionsService.record_transaction)


class BlockingAccounts(BlockingWrapper[AccountsService]):
    """:class:`~tokenbank.services.accounts.AccountsService` (freezes, closing, limits), blocking."""

    get_account = BlockingMethod(AccountsService.get_account)
    freeze = BlockingMethod(AccountsService.freeze)
    unfreeze = BlockingMethod(AccountsService.unfreeze)
    close_account = BlockingMethod(AccountsService.close_account)
    set_limits = BlockingMethod(AccountsService.set_limits)


class BlockingChain(BlockingWrapper[ChainService]):
    """:class:`~tokenbank.services.chain.ChainService`, blocking."""

    seal = BlockingMethod(ChainService.seal)
    verify = BlockingMethod(ChainService.verify)
    checkpoint = BlockingMethod(ChainService.checkpoint)
    checkpoints = BlockingMethod(ChainService.checkpoints)
    proof = BlockingMethod(ChainService.proof)


def _off_the_loop(handler: Handler) -> Handler:
    """A plain handler runs on a worker thread, so it may block and call the blocking bank itself; an async
    one runs on the bank's loop."""
    if inspect.iscoroutinefunction(handler):
        return handler

    async def run(tx: Transaction) -> None:
        await asyncio.to_thread(handler, tx)

    return run


class BlockingEvents(BlockingWrapper[EventsService]):
    """:class:`~tokenbank.services.feed.EventsService` (the durable ledger feed), blocking. A plain handler runs
    on a worker thread, one transaction at a time, in seq order."""

    read = BlockingMethod(EventsService.read)
    cursor = BlockingMethod(EventsService.cursor)

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


class BlockingWebhooks(BlockingWrapper[WebhooksService]):
    """:class:`~tokenbank.services.webhooks.WebhooksService`, blocking."""

    add = BlockingMethod(WebhooksService.add)
    list = BlockingMethod(WebhooksService.list)
    remove = BlockingMethod(WebhooksService.remove)
    deliveries = BlockingMethod(WebhooksService.deliveries)
    attempts = BlockingMethod(WebhooksService.attempts)
    redeliver = BlockingMethod(WebhooksService.redeliver)
    run_once = BlockingMethod(WebhooksService.run_once)


class BlockingMonitors(BlockingWrapper[MonitorsService]):
    """:class:`~tokenbank.services.monitors.MonitorsService`, blocking."""

    add = BlockingMethod(MonitorsService.add)
    list = BlockingMethod(MonitorsService.list)
    remove = BlockingMethod(MonitorsService.remove)
    events = BlockingMethod(MonitorsService.events)


class BlockingPricing(BlockingWrapper[PricingService]):
    """:class:`~tokenbank.services.pricing.PricingService`, blocking."""

    get_usd_price = BlockingMethod(PricingService.get_usd_price)
    to_usd = BlockingMethod(PricingService.to_usd)
    get_balance_in_usd = BlockingMethod(PricingService.get_balance_in_usd)


class BlockingAnalytics(BlockingWrapper[AnalyticsService]):
    """:class:`~tokenbank.services.analytics.AnalyticsService` (SQL stores), blocking."""

    get_volume = BlockingMethod(AnalyticsService.get_volume)
    get_active_accounts = BlockingMethod(AnalyticsService.get_active_accounts)
    get_top_senders = BlockingMethod(AnalyticsService.get_top_senders)
    get_top_receivers = BlockingMethod(AnalyticsService.get_top_receivers)
    get_balance_distribution = BlockingMethod(AnalyticsService.get_balance_distribution)
    get_supply_over_time = BlockingMethod(AnalyticsService.get_supply_over_time)
    get_last_seq = BlockingMethod(AnalyticsService.get_last_seq)
    count_transactions = BlockingMethod(AnalyticsService.count_transactions)
    iter_transaction_chunks = BlockingIterator(AnalyticsService.iter_transaction_chunks)
