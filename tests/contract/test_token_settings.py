"""The stored token is the truth: reopening never rewrites it, configure_token is the one way to change it, and no
token is created by accident (auto_create off)."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest

from tests.backends import BoundBackend
from tests.support import assert_error, open_bank, snapshot
from tokenbank import (
    ConfigurationError,
    InvalidAccountError,
    InvalidAmountError,
    InvalidRequestError,
    SettingDrift,
    SupplyCapExceededError,
    TokenBank,
    TokenNotInitializedError,
)


def _drift_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tokenbank" and r.levelno == logging.WARNING]


async def test_reopening_with_other_settings_keeps_the_stored_token(
    durable_backend: BoundBackend, caplog: pytest.LogCaptureFixture
) -> None:
    created_with = {
        "initial_supply": 100, "max_supply": 1000, "name": "Gold", "emoji": "🪙", "treasury_account": "vault",
        "leaderboard_exclude": ("vault", "ops"),
    }  # fmt: skip
    async with open_bank(durable_backend, **created_with) as first:
        created = await first.get_token_info()
        assert first.token_created and first.settings_drift == ()
    caplog.set_level(logging.WARNING, logger="tokenbank")
    caplog.clear()
    reopened_with = {
        "initial_supply": 7, "max_supply": 500, "name": "Renamed", "emoji": "⭐", "treasury_account": "other",
        "leaderboard_exclude": ("other",),
    }  # fmt: skip
    async with open_bank(durable_backend, **reopened_with) as second:
        assert not second.token_created
        info = await second.get_token_info()
        assert info == created  # every stored setting kept, supply untouched
        assert (info.name, info.emoji, info.max_supply, info.treasury_account) == ("Gold", "🪙", 1000, "vault")
        assert info.leaderboard_exclude == ("vault", "ops")
        # One warning per disagreeing field, naming its variable; initial supply is a creation-time value only.
        warnings = _drift_warnings(caplog)
        assert len(warnings) == 5, warnings
        variables = [
            "TOKEN_NAME",
            "TOKEN_EMOJI",
            "TOKEN_TREASURY_ACCOUNT",
            "TOKEN_MAX_SUPPLY",
            "TOKEN_LEADERBOARD_EXCLUDE",
        ]
        assert [w.split(":")[0] for w in warnings] == variables
        assert [d.variable for d in second.settings_drift] == variables
        cap = next(d for d in second.settings_drift if d.field == "max_supply")
        assert cap == SettingDrift("max_supply", "TOKEN_MAX_SUPPLY", "500", "1000")
        # health() lists them as a degraded "settings" check.
        report = await second.health()
        assert report.status == "degraded"
        [check] = [c for c in report.checks if c.name == "settings"]
        assert check.status == "degraded"
        assert all(variable in check.detail for variable in variables)
        assert "settings" in [c["name"] for c in report.as_dict()["checks"]]
        # The stored values rule: the cap, the treasury and the exclusions.
        with pytest.raises(SupplyCapExceededError):
            await second.mint("alice", "900.01")
        await second.transfer("vault", "ops", 10)
        await second.transfer("vault", "alice", 5)
        assert [h.user_id for h in await second.get_top_holders()] == ["alice"]
        assert await second.get_rank("ops") is None and await second.get_rank("other") is None
        assert await second.get_circulating_supply() == 5
        assert "token.configure" not in [e.action for e in await second.get_audit_log()]


async def test_settings_left_at_their_defaults_do_not_warn(
    durable_backend: BoundBackend, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_bank(durable_backend, initial_supply=100, max_supply=1000, emoji="🪙"):
        pass
    caplog.set_level(logging.WARNING, logger="tokenbank")
    caplog.clear()
    async with open_bank(durable_backend) as bank:  # no max supply, no emoji given: nothing disagrees
        assert bank.settings_drift == ()
        assert _drift_warnings(caplog) == []
        assert (await bank.get_token_info()).max_supply == 1000
        with pytest.raises(SupplyCapExceededError):
            await bank.mint("alice", "900.01")
        assert "settings" not in [c.name for c in (await bank.health()).checks]


async def test_reopening_with_other_decimals_is_still_refused(durable_backend: BoundBackend) -> None:
    async with open_bank(durable_backend, initial_supply=100, decimals=2):
        pass
    bank = TokenBank(durable_backend.settings(decimals=4, auto_create=False))
    try:
        with pytest.raises(ConfigurationError, match="TOKEN_DECIMALS"):
            await bank.open()
    finally:
        await bank.close()


async def test_configure_token_changes_only_what_is_given_and_audits(backend: BoundBackend) -> None:
    async with open_bank(backend, initial_supply=100, max_supply=1000, emoji="🪙") as bank:
        created = await bank.get_token_info()
        info = await bank.configure_token(name="Renamed", max_supply=500)
        assert (info.name, info.max_supply, info.emoji) == ("Renamed", 500, "🪙")
        assert info.total_supply == 100 and info.created_at == created.created_at
        assert await bank.get_token_info() == info
        [entry, *_] = await bank.get_audit_log()
        assert entry.action == "token.configure"
        assert entry.details == {"name": "Renamed", "max_supply": str(500 * 100)}  # base units, 2 decimals
        with pytest.raises(SupplyCapExceededError):
            await bank.mint("alice", "400.01")
        await bank.mint("alice", 400)

        # None removes the cap and the emoji; values equal to the stored ones change and audit nothing.
        info = await bank.configure_token(max_supply=None, emoji=None)
        assert (info.max_supply, info.emoji) == (None, None)
        entries = await bank.get_audit_log()
        assert entries[0].details == {"max_supply": None, "emoji": None}
        assert await bank.configure_token(name="Renamed", max_supply=None) == info
        assert len(await bank.get_audit_log()) == len(entries)
        await bank.mint("alice", 10_000)


async def test_configure_token_cap_below_supply_changes_nothing(backend: BoundBackend) -> None:
    async with open_bank(backend, initial_supply=100, max_supply=1000) as bank:
        before, audit = await bank.get_token_info(), await bank.get_audit_log()
        state = await snapshot(bank)
        with pytest.raises(SupplyCapExceededError) as caught:
            await bank.configure_token(max_supply="99.99", name="Not applied")
        assert_error(caught.value, SupplyCapExceededError)
        assert await bank.get_token_info() == before
        assert await bank.get_audit_log() == audit
        assert await snapshot(bank) == state
        # Exactly the total supply is allowed.
        assert (await bank.configure_token(max_supply=100)).max_supply == 100
        with pytest.raises(SupplyCapExceededError):
            await bank.mint("alice", "0.01")


async def test_configure_token_cap_races_with_mints(backend: BoundBackend) -> None:
    """A mint and a lower cap at the same time: whichever comes second sees the first, never both past it."""
    async with open_bank(backend, initial_supply=100, decimals=0) as bank:
        for _ in range(5):
            supply = await bank.get_total_supply()
            mint, cap = await asyncio.gather(
                bank.mint("alice", 10), bank.configure_token(max_supply=supply + 5), return_exceptions=True
            )
            outcomes = (mint, cap)
            assert all(isinstance(o, SupplyCapExceededError) or not isinstance(o, BaseException) for o in outcomes)
            assert sum(isinstance(o, SupplyCapExceededError) for o in outcomes) == 1, outcomes
            info = await bank.get_token_info()
            assert info.max_supply is None or info.total_supply <= info.max_supply
            await bank.configure_token(max_supply=None)


async def test_configure_token_refuses_bad_values(backend: BoundBackend) -> None:
    async with open_bank(backend, initial_supply=100) as bank:
        before = await bank.get_token_info()
        with pytest.raises(InvalidAmountError):
            await bank.configure_token(max_supply=1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidAmountError):
            await bank.configure_token(max_supply="0.001")
        with pytest.raises(InvalidAccountError):
            await bank.configure_token(treasury_account="")
        with pytest.raises(InvalidAccountError):
            await bank.configure_token(leaderboard_exclude=["ok", "bad\n"])
        with pytest.raises(InvalidRequestError):
            await bank.configure_token(leaderboard_exclude="alice")  # a string is not a list of accounts
        with pytest.raises(InvalidRequestError):
            await bank.configure_token(name="")
        with pytest.raises(InvalidRequestError):
            await bank.configure_token(emoji="x" * 17)
        assert await bank.get_token_info() == before


async def test_leaderboard_exclusions_are_stored_and_configurable(durable_backend: BoundBackend) -> None:
    async with open_bank(durable_backend, initial_supply=1000, leaderboard_exclude=("treasury", "ops")) as bank:
        assert (await bank.get_token_info()).leaderboard_exclude == ("treasury", "ops")
        await bank.transfer("treasury", "alice", 100)
        await bank.transfer("treasury", "ops", 50)
    # Reopened with default settings: the stored exclusions still apply.
    async with open_bank(durable_backend) as bank:
        assert [h.user_id for h in await bank.get_top_holders()] == ["alice"]
        assert await bank.get_rank("ops") is None
        assert await bank.get_circulating_supply() == 100

        info = await bank.configure_token(leaderboard_exclude=["alice"])
        assert info.leaderboard_exclude == ("alice",)
        assert (await bank.get_audit_log())[0].details == {"leaderboard_exclude": ["alice"]}
        assert [h.user_id for h in await bank.get_top_holders()] == ["treasury", "ops"]
        assert await bank.get_rank("alice") is None and await bank.get_rank("treasury") == 1
        assert await bank.get_circulating_supply() == 900

        # None: back to the treasury alone, whichever account that is.
        await bank.configure_token(leaderboard_exclude=None, treasury_account="ops")
        info = await bank.get_token_info()
        assert (info.treasury_account, info.leaderboard_exclude) == ("ops", ("ops",))
        assert [h.user_id for h in await bank.get_top_holders()] == ["treasury", "alice"]
        assert await bank.get_circulating_supply() == 950
    async with open_bank(durable_backend) as bank:
        assert (await bank.get_token_info()).leaderboard_exclude == ("ops",)


async def test_auto_create_off_never_creates_a_token(backend: BoundBackend) -> None:
    bank = TokenBank(backend.settings(initial_supply=100, auto_create=False))
    try:
        with pytest.raises(TokenNotInitializedError) as caught:
            await bank.open()
        assert_error(caught.value, TokenNotInitializedError)
        assert backend.scope.symbol in str(caught.value)
    finally:
        await bank.close()
    if not backend.persistent:
        return
    probe = TokenBank(backend.settings(auto_create=False))
    await probe.storage.open()
    try:
        assert await probe.storage.get_token() is None  # nothing was created
        for read in (
            probe.get_balance("alice"), probe.get_balances(["alice"]), probe.get_top_holders(), probe.get_rank("a"),
            probe.get_token_info(), probe.get_circulating_supply(), probe.get_held_balance("alice"),
            probe.transactions.get_transaction_history("alice"),
        ):  # fmt: skip
            with pytest.raises(TokenNotInitializedError):
                await read
    finally:
        await probe.close()
    # With auto_create (the default) the same settings create it; afterwards auto_create=False opens it.
    async with open_bank(backend, initial_supply=100):
        pass
    async with open_bank(backend, auto_create=False) as bank:
        assert not bank.token_created
        assert await bank.get_balance("treasury") == Decimal(100)
