"""The blocking API cannot drift from the async one: every public coroutine method has a blocking twin."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import tokenbank
from tokenbank import blocking
from tokenbank.services.accounts import AccountsService
from tokenbank.services.analytics import AnalyticsService
from tokenbank.services.balances import BalancesService
from tokenbank.services.chain import ChainService
from tokenbank.services.feed import EventsService
from tokenbank.services.monitors import MonitorsService
from tokenbank.services.pricing import PricingService
from tokenbank.services.transactions import TransactionsService
from tokenbank.services.webhooks import WebhooksService

PAIRS: list[tuple[type[Any], type[Any]]] = [
    (tokenbank.TokenBank, blocking.TokenBank),
    (BalancesService, blocking.BlockingBalances),
    (TransactionsService, blocking.BlockingTransactions),
    (PricingService, blocking.BlockingPricing),
    (AnalyticsService, blocking.BlockingAnalytics),
    (ChainService, blocking.BlockingChain),
    (EventsService, blocking.BlockingEvents),
    (WebhooksService, blocking.BlockingWebhooks),
    (MonitorsService, blocking.BlockingMonitors),
    (AccountsService, blocking.BlockingAccounts),
]


def _async_methods(cls: type[Any]) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and (inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member))
    }


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=[pair[1].__name__ for pair in PAIRS])
def test_every_coroutine_method_has_a_blocking_twin(async_cls: type[Any], sync_cls: type[Any]) -> None:
    names = _async_methods(async_cls)
    assert names, async_cls
    missing = sorted(name for name in names if not hasattr(sync_cls, name))
    assert not missing, f"{sync_cls.__name__} lacks {missing}"
    for name in names:
        member = inspect.getattr_static(sync_cls, name)
        assert not inspect.iscoroutinefunction(member), name
        # Same parameters as the async method (the wrappers are generated from it, never retyped by hand).
        wrapped = getattr(member, "__wrapped__", member)
        assert (
            inspect.signature(wrapped).parameters.keys()
            == inspect.signature(getattr(async_cls, name)).parameters.keys()
        )


def test_every_service_of_the_async_bank_is_there(tmp_path: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/tb.db"
    async_bank = tokenbank.TokenBank(tokenbank.Settings(database_url=url))
    services = {
        name
        for name, value in vars(async_bank).items()
        if not name.startswith("_") and type(value).__module__.startswith("tokenbank.services")
    } | {"analytics", "events", "webhooks", "monitors"}
    assert services >= {"balances", "transactions", "formatter", "pricing"}
    with blocking.TokenBank(tokenbank.Settings(database_url=url)) as bank:
        for name in services:
            assert hasattr(bank, name), name
        for name in ("settings", "decimals", "given_settings", "settings_drift", "token_created", "from_env"):
            assert hasattr(bank, name), name


def test_public_names() -> None:
    assert blocking.__all__ == sorted(blocking.__all__)
    for name in blocking.__all__:
        assert hasattr(blocking, name)
