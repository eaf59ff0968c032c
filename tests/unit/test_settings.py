"""Settings: the seed's environment names, aliases, and one clear error naming the variable."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

import pytest

from tokenbank import ConfigurationError, Settings, StorageMode, TokenBank

pytestmark = pytest.mark.usefixtures("clean_env")


def test_defaults() -> None:
    s = Settings.load()
    assert s.storage_mode is StorageMode.SQL
    assert s.database_url == "sqlite+aiosqlite:///tokenbank.db"
    assert (s.symbol, s.decimals, s.treasury_account) == ("TOKEN", 2, "treasury")
    assert s.initial_supply == 0 and s.max_supply is None
    assert s.excluded_accounts == ("treasury",)


def test_environment_names(clean_env: pytest.MonkeyPatch) -> None:
    env = {
        "TOKEN_STORAGE_MODE": "redis",
        "DATABASE_URL": "postgresql+asyncpg://u@h/db",
        "REDIS_URL": "redis://cache:6380/2",
        "TOKEN_NAME": "Gold",
        "TOKEN_SYMBOL": "GLD",
        "TOKEN_EMOJI": "🪙",
        "TOKEN_DECIMALS": "4",
        "TOKEN_INITIAL_SUPPLY": "1000.5",
        "TOKEN_MAX_SUPPLY": "5000",
        "TOKEN_TREASURY_ACCOUNT": "vault",
        "TOKEN_USD_PRICE": "0.25",
        "TOKEN_KEY_PREFIX": "app",
        "TOKEN_LEADERBOARD_EXCLUDE": "vault, ops ,",
        "TOKEN_ENABLE_LEADERBOARD": "false",
        "TOKEN_ENABLE_NOTIFICATIONS": "0",
        "TOKEN_ENABLE_AUDIT_LOG": "true",
        "TOKEN_ENABLE_SYNCHRONIZATION": "no",
    }
    for name, value in env.items():
        clean_env.setenv(name, value)
    s = Settings.load()
    assert s.storage_mode is StorageMode.REDIS
    assert s.database_url == "postgresql+asyncpg://u@h/db"
    assert s.redis_url == "redis://cache:6380/2"
    assert (s.name, s.symbol, s.emoji, s.decimals) == ("Gold", "GLD", "🪙", 4)
    assert s.initial_supply == Decimal("1000.5") and s.max_supply == 5000
    assert s.treasury_account == "vault" and s.usd_price == Decimal("0.25") and s.key_prefix == "app"
    assert s.excluded_accounts == ("vault", "ops")
    assert (s.enable_leaderboard, s.enable_notifications, s.enable_audit_log, s.enable_synchronization) == (
        False,
        False,
        True,
        False,
    )


def test_arguments_win_over_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TOKEN_DECIMALS", "4")
    assert Settings.load(decimals=6).decimals == 6
    assert Settings.load().decimals == 4


@pytest.mark.parametrize(
    ("value", "mode"),
    [("sql", "sql"), ("postgres-only", "sql"), ("redis-only", "redis"), ("redis", "redis"), ("hybrid", "hybrid")],
)
def test_storage_mode_aliases(clean_env: pytest.MonkeyPatch, value: str, mode: str) -> None:
    clean_env.setenv("TOKEN_STORAGE_MODE", value)
    assert Settings.load().storage_mode == mode
    clean_env.delenv("TOKEN_STORAGE_MODE")
    assert Settings.load(storage_mode=value).storage_mode == mode


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"decimals": 99}, "TOKEN_DECIMALS"),
        ({"decimals": -1}, "TOKEN_DECIMALS"),
        ({"symbol": "has space"}, "TOKEN_SYMBOL"),
        ({"symbol": "x" * 17}, "TOKEN_SYMBOL"),
        ({"symbol": ""}, "TOKEN_SYMBOL"),
        ({"storage_mode": "mongo"}, "TOKEN_STORAGE_MODE"),
        ({"initial_supply": -5}, "TOKEN_INITIAL_SUPPLY"),
        ({"initial_supply": "0.001"}, "TOKEN_INITIAL_SUPPLY"),
        ({"max_supply": 0}, "TOKEN_MAX_SUPPLY"),
        ({"initial_supply": 10, "max_supply": 5}, "TOKEN_INITIAL_SUPPLY"),
        ({"treasury_account": ""}, "TOKEN_TREASURY_ACCOUNT"),
        ({"database_schema": "Bad-Schema"}, "TOKEN_DATABASE_SCHEMA"),
        ({"usd_price": -1}, "TOKEN_USD_PRICE"),
        ({"hold_sweep_interval": -1}, "TOKEN_HOLD_SWEEP_INTERVAL"),
    ],
)
def test_bad_configuration_names_the_variable(overrides: dict[str, Any], variable: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.load(**overrides)
    assert variable in str(caught.value)
    assert caught.value.code == "configuration_error"
    # Direct construction fails the same way: one ConfigurationError, never pydantic's ValidationError.
    with pytest.raises(ConfigurationError) as direct:
        Settings(**overrides)
    assert str(direct.value) == str(caught.value)
    assert direct.value.__cause__ is None and direct.value.__suppress_context__


def test_bad_environment_value_names_the_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TOKEN_DECIMALS", "lots")
    with pytest.raises(ConfigurationError, match="TOKEN_DECIMALS"):
        Settings.load()


def test_settings_are_frozen() -> None:
    s = Settings.load()
    with pytest.raises(Exception, match="frozen"):
        s.decimals = 3  # type: ignore[misc]


def test_token_bank_from_env_and_overrides(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TOKEN_SYMBOL", "ENV")
    clean_env.setenv("DATABASE_URL", "sqlite+aiosqlite:///:memory:")
    bank = TokenBank.from_env(decimals=3)
    assert (bank.settings.symbol, bank.settings.decimals) == ("ENV", 3)
    assert TokenBank(Settings.load(), symbol="OVR").settings.symbol == "OVR"
    with pytest.raises(ConfigurationError, match="TOKEN_DECIMALS"):
        TokenBank(decimals=40)


async def test_unsupported_database_url_is_a_configuration_error() -> None:
    bank = TokenBank(Settings.load(database_url="mysql://u@h/db"))
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        bank.storage  # noqa: B018


async def test_postgresql_without_the_postgres_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if asyncpg were not installed
    bank = TokenBank(Settings(database_url="postgresql+asyncpg://127.0.0.1:1/db"))
    with pytest.raises(ConfigurationError, match=r"DATABASE_URL: .*pip install 'tokenbank\[postgres\]'"):
        bank.storage  # noqa: B018


def test_the_configuration_error_wrapper_is_the_outermost_model_validator() -> None:
    # pydantic nests model validators in definition order: one defined after the wrapper would escape it and
    # surface as a ValidationError.
    assert list(Settings.__pydantic_decorators__.model_validators)[-1] == "_configuration_error"


def test_ledger_group(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings.load().ledger_group is None
    clean_env.setenv("TOKEN_LEDGER_GROUP", "game-1")
    assert Settings.load().ledger_group == "game-1"
    for bad in ("", "{game}", "a:b", "g" * 33, "with space"):
        with pytest.raises(ConfigurationError, match="TOKEN_LEDGER_GROUP"):
            Settings(ledger_group=bad)
