"""The blocking API: :class:`TokenBank` for synchronous code (Django, Flask, scripts, task workers).

Every coroutine method of :class:`tokenbank.TokenBank` and of its services is wrapped here, one line each, to run
on a private event loop in a daemon thread: one implementation, and one loop the bank's connection pools stay
bound to, whichever threads call it. A test checks that no public coroutine method is left out. :func:`exchange`
wraps :func:`tokenbank.exchanges.exchange` for two banks sharing one loop (``share_loop_with``).

::

    with TokenBank(Settings(database_url="sqlite+aiosqlite:///app.db")) as bank:
        bank.transfer("alice", "bob", "2.50")
"""

from tokenbank.blocking.bank import TokenBank
from tokenbank.blocking.exchanges import exchange
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
