"""Token lifecycle: initialize (idempotent, wrong decimals), token info, supply, several tokens (settings drift and
configure_token: test_token_settings.py)."""

from __future__ import annotations

import asyncio
import gc
import sys
import warnings
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.backends import BoundBackend, unique
from tests.support import assert_error, history, open_bank, snapshot
from tokenbank import (
    ConfigurationError,
    TokenBank,
    TokenInfo,
    TokenNotInitializedError,
    TransactionNotFoundError,
    TransactionType,
)


async def test_token_info_reflects_settings(backend: BoundBackend) -> None:
    async with open_bank(backend, name="Gold", emoji="🪙", decimals=3, initial_supply="12.5", max_supply=100) as bank:
        info = await bank.get_token_info()
    assert isinstance(info, TokenInfo)
    assert (info.name, info.symbol, info.decimals, info.emoji) == ("Gold", backend.scope.symbol, 3, "🪙")
    assert info.treasury_account == "treasury"
    assert info.initial_supply == Decimal("12.5")
    assert info.max_supply == Decimal(100)
    assert info.total_supply == Decimal("12.5")
    assert info.created_at.tzinfo is not None and info.created_at.utcoffset() == timedelta(0)


async def test_initial_supply_goes_to_the_configured_treasury(backend: BoundBackend) -> None:
    async with open_bank(backend, initial_supply=50, treasury_account="vault") as bank:
        assert await bank.get_balances(["vault", "treasury"]) == {"vault": 50, "treasury": 0}
        [mint] = await history(bank, "vault")
        assert mint.type is TransactionType.MINT and mint.to_user_id == "vault" and mint.amount == 50
        assert await bank.get_circulating_supply() == 0


async def test_no_initial_supply_mints_nothing(backend: BoundBackend) -> None:
    async with open_bank(backend) as bank:
        assert await bank.get_total_supply() == 0
        assert await history(bank, "treasury") == []


async def test_initialize_token_is_idempotent(durable_backend: BoundBackend) -> None:
    async with open_bank(durable_backend, initial_supply=1000) as first:
        assert await first.initialize_token() == await first.get_token_info()
        await first.transfer("treasury", "alice", 10)
    async with open_bank(durable_backend, initial_supply=1000) as second:
        again = await second.initialize_token()
        assert again.total_supply == 1000
        assert await second.get_balances(["treasury", "alice"]) == {"treasury": 990, "alice": 10}
        mints = await history(second, "treasury", types=["mint"])
        assert len(mints) == 1
        actions = [entry.action for entry in await second.get_audit_log()]
        assert actions.count("token.initialize") == 1
        assert "token.configure" not in actions


async def test_reopening_with_other_decimals_is_refused(durable_backend: BoundBackend) -> None:
    async with open_bank(durable_backend, initial_supply=100, decimals=2):
        pass
    bank = TokenBank(durable_backend.settings(initial_supply=100, decimals=4))
    try:
        with pytest.raises(ConfigurationError) as caught:
            await bank.open()
        assert_error(caught.value, ConfigurationError)
        assert "TOKEN_DECIMALS" in str(caught.value)
    finally:
        await bank.close()
    async with open_bank(durable_backend, initial_supply=100) as bank:
        assert (await bank.get_token_info()).decimals == 2
        assert await bank.get_balance("treasury") == 100


async def test_reopening_with_max_supply_below_supply_opens_and_keeps_the_stored_cap(
    durable_backend: BoundBackend,
) -> None:
    async with open_bank(durable_backend, initial_supply=100):
        pass
    async with open_bank(durable_backend, initial_supply=10, max_supply=50) as bank:
        assert (await bank.get_token_info()).max_supply is None  # settings never change a stored token
        assert [d.variable for d in bank.settings_drift] == ["TOKEN_MAX_SUPPLY"]
        await bank.mint("alice", 1000)


async def test_a_failed_open_releases_its_connections(durable_backend: BoundBackend) -> None:
    """``async with TokenBank(bad)`` raising in open() runs no __aexit__: open() itself must release the store."""
    async with open_bank(durable_backend, initial_supply=100):
        pass
    leaks: list[Any] = []
    previous_hook = sys.unraisablehook
    sys.unraisablehook = leaks.append
    try:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            bank = TokenBank(durable_backend.settings(decimals=5))
            with pytest.raises(ConfigurationError):
                async with bank:
                    pass
            del bank
            await asyncio.sleep(0)
            gc.collect()
    finally:
        sys.unraisablehook = previous_hook
    resource_warnings = [w for w in warned if issubclass(w.category, ResourceWarning)]
    assert not leaks and not resource_warnings, f"a failed open() leaked: {leaks} {resource_warnings}"


async def test_writes_before_initialize_token_raise_token_not_initialized(backend: BoundBackend) -> None:
    bank = TokenBank(backend.settings(initial_supply=5))
    await bank.storage.open()
    try:
        with pytest.raises(TokenNotInitializedError) as caught:
            await bank.get_token_info()
        assert_error(caught.value, TokenNotInitializedError)
        with pytest.raises(TokenNotInitializedError):
            await bank.mint("alice", 1)
        with pytest.raises(TokenNotInitializedError):
            await bank.transfer("treasury", "alice", 1)
        info = await bank.initialize_token()
        assert info.total_supply == 5
        await bank.transfer("treasury", "alice", 1)
        assert await bank.get_balance("alice") == 1
        assert (await bank.verify()).ok
    finally:
        await bank.close()


async def test_total_and_circulating_supply(backend: BoundBackend) -> None:
    async with open_bank(backend, initial_supply=1000, leaderboard_exclude=("treasury", "ops")) as bank:
        assert await bank.get_total_supply() == 1000
        assert await bank.get_circulating_supply() == 0
        await bank.transfer("treasury", "alice", 100)
        await bank.transfer("treasury", "ops", 50)
        assert await bank.get_circulating_supply() == 100
        await bank.mint("bob", "2.5")
        await bank.burn("alice", 10)
        assert await bank.get_total_supply() == Decimal("992.5")
        assert await bank.get_circulating_supply() == Decimal("92.5")
        # Held funds still belong to the supply; a hold out of an excluded account stays excluded.
        await bank.hold("ops", "alice", 20, expires_in=60)
        await bank.hold("alice", "bob", 30, expires_in=60)
        assert await bank.get_total_supply() == Decimal("992.5")
        assert await bank.get_circulating_supply() == Decimal("92.5")


async def test_several_tokens_in_one_database_do_not_see_each_other(durable_backend: BoundBackend) -> None:
    other = unique()
    async with (
        open_bank(durable_backend, initial_supply=1000) as a,
        open_bank(durable_backend, symbol=other, initial_supply=7, decimals=0) as b,
    ):
        before_b = await snapshot(b)
        tx = await a.transfer("treasury", "alice", 100, idempotency_key="shared-key")
        await a.mint("bob", 5, idempotency_key="mint-key")
        await a.hold("alice", "bob", 1, expires_in=60)
        assert await snapshot(b) == before_b
        assert (await b.get_token_info()).symbol == other
        assert await b.get_total_supply() == 7
        with pytest.raises(TransactionNotFoundError):
            await b.transactions.get_transaction_by_id(tx.id)
        with pytest.raises(TransactionNotFoundError):
            await b.reverse(tx.id, reason="not mine")
        # The same idempotency key is a different request in another token.
        tx_b = await b.transfer("treasury", "alice", 3, idempotency_key="shared-key")
        assert tx_b.id != tx.id
        assert await a.get_balances(["treasury", "alice"]) == {"treasury": 900, "alice": 99}
        assert await b.get_balances(["treasury", "alice"]) == {"treasury": 4, "alice": 3}
        assert [h.user_id for h in await b.get_top_holders()] == ["alice"]
        assert await b.get_held_balance("alice") == 0
        assert await a.get_total_supply() == 1005
        assert len(await history(b, "alice")) == 1
        assert {e.action for e in await b.get_audit_log()} == {"token.initialize", "mint"}


async def test_close_is_idempotent_and_a_bank_reopens(backend: BoundBackend) -> None:
    never_opened = TokenBank(backend.settings())
    await never_opened.close()
    bank = TokenBank(backend.settings(initial_supply=5))
    await bank.open()
    assert await bank.get_balance("treasury") == 5
    await bank.close()
    await bank.close()  # a second close (e.g. a finally after a failed open) is harmless


async def test_close_after_a_failed_open_is_harmless(durable_backend: BoundBackend) -> None:
    async with open_bank(durable_backend, initial_supply=100):
        pass
    bank = TokenBank(durable_backend.settings(decimals=3))
    with pytest.raises(ConfigurationError):
        await bank.open()
    await bank.close()
