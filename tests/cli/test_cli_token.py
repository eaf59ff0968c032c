"""No accidental tokens from the CLI, settings that never rewrite a stored token, and ``tokenbank token``."""

from __future__ import annotations

import contextlib
import json
import sqlite3

import pytest

from tests.cli.conftest import Cli, assert_one_line_error
from tokenbank import Settings
from tokenbank.cli.runtime import describe_store


def _symbols(cli: Cli) -> list[str]:
    with contextlib.closing(sqlite3.connect(cli.db)) as conn:
        return [row[0] for row in conn.execute("SELECT symbol FROM tb_tokens ORDER BY symbol")]


def _audit_actions(cli: Cli, symbol: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(cli.db)) as conn:
        return [row[0] for row in conn.execute("SELECT action FROM tb_audit WHERE token = ? ORDER BY id", (symbol,))]


@pytest.mark.parametrize(
    "args", [("balance", "alice"), ("transfer", "treasury", "alice", "1"), ("mint", "bob", "5"), ("supply",)]
)
def test_a_missing_token_is_one_exact_line_and_is_not_created(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args, TOKEN_SYMBOL="NOPE")
    line = assert_one_line_error(result, "token_not_initialized")
    assert line == f"error [token_not_initialized]: token 'NOPE' does not exist in {cli.url}; run tokenbank init"
    assert _symbols(cli) == ["TST"]
    # Even TOKEN_AUTO_CREATE=true does not make an ordinary command create a token.
    assert_one_line_error(cli(*args, TOKEN_SYMBOL="NOPE", TOKEN_AUTO_CREATE="true"), "token_not_initialized")
    assert _symbols(cli) == ["TST"]


def test_token_configure_on_a_missing_token_is_the_same_line(cli: Cli) -> None:
    line = assert_one_line_error(cli("token", "configure", "--name", "X", TOKEN_SYMBOL="NOPE"), "token_not_initialized")
    assert line.endswith("; run tokenbank init")
    assert _symbols(cli) == ["TST"]


def test_a_cap_set_at_init_survives_commands_run_without_it(cli: Cli) -> None:
    env = {"TOKEN_SYMBOL": "CAP", "TOKEN_INITIAL_SUPPLY": "600"}
    assert cli("init", TOKEN_MAX_SUPPLY="1000", **env).exit_code == 0
    line = assert_one_line_error(cli("mint", "bob", "500", **env), "supply_cap_exceeded")
    assert "maximum supply" in line
    supply = json.loads(cli("supply", "--json", **env).stdout)
    assert (supply["total_supply"], supply["max_supply"]) == ("600.00", "1000.00")
    assert "token.configure" not in _audit_actions(cli, "CAP")
    assert cli("mint", "bob", "400", **env).exit_code == 0


def test_init_on_an_existing_token_says_so_and_changes_nothing(cli: Cli) -> None:
    before = cli.json("token", "show")
    result = cli("init", "--json", TOKEN_NAME="Other", TOKEN_MAX_SUPPLY="5000", TOKEN_INITIAL_SUPPLY="1")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["max_supply"] is None  # stdout stays the JSON of the stored token
    assert "already exists" in result.stderr
    assert "TOKEN_NAME: settings say 'Other', the stored token says 'Token'" in result.stderr
    assert "TOKEN_MAX_SUPPLY: settings say 5000, the stored token says none" in result.stderr
    assert "tokenbank token configure" in result.stderr
    assert cli.json("token", "show") == before
    assert "already exists" in cli("init").stderr  # nothing differs: no "not applied" lines
    assert "not applied" not in cli("init").stderr


def test_token_configure_changes_what_is_given_and_prints_it(cli: Cli) -> None:
    result = cli("token", "configure", "--name", "Gold", "--max-supply", "2000", "--emoji", "🪙")
    assert result.exit_code == 0, result.output
    assert "name: Token -> Gold" in result.stdout
    assert "max_supply: unlimited -> 2000.00" in result.stdout
    assert "emoji: none -> 🪙" in result.stdout
    assert _audit_actions(cli, "TST")[-1] == "token.configure"
    shown = cli.json("token", "show")
    assert (shown["name"], shown["max_supply"], shown["emoji"]) == ("Gold", "2000.00", "🪙")
    assert shown["leaderboard_exclude"] == ["treasury"] and shown["store"] == cli.url

    line = assert_one_line_error(cli("token", "configure", "--max-supply", "999.99"), "supply_cap_exceeded")
    assert "below the total supply" in line
    assert cli.json("token", "show")["max_supply"] == "2000.00"

    cli.json("transfer", "treasury", "alice", "10")
    cli.json("transfer", "treasury", "ops", "20")
    changed = cli.json("token", "configure", "--no-max-supply", "--leaderboard-exclude", "treasury, ops")
    assert changed["changed"] == {
        "max_supply": {"from": "2000.00", "to": None},
        "leaderboard_exclude": {"from": ["treasury"], "to": ["treasury", "ops"]},
    }
    assert [row["user_id"] for row in cli.json("top")] == ["alice"]
    assert cli.json("supply")["circulating_supply"] == "10.00"
    assert "nothing changed" in cli("token", "configure", "--name", "Gold").stdout
    assert cli.json("token", "configure", "--leaderboard-exclude", "")["token"]["leaderboard_exclude"] == []
    assert [row["user_id"] for row in cli.json("top")] == ["treasury", "ops", "alice"]
    assert "leaderboard exclude: (no account)" in cli("token", "show").stdout


def test_token_configure_usage_errors_exit_2(cli: Cli) -> None:
    assert cli("token", "configure").exit_code == 2
    assert cli("token", "configure", "--max-supply", "5", "--no-max-supply").exit_code == 2
    assert cli("token", "configure", "--emoji", "x", "--no-emoji").exit_code == 2
    assert_one_line_error(cli("token", "configure", "--max-supply", "1e9"), "invalid_amount")
    assert_one_line_error(cli("token", "configure", "--treasury", "bad\tid"), "invalid_account")


def test_the_store_is_described_without_secrets() -> None:
    redis = Settings(storage_mode="redis", redis_url="redis://:s3cret@cache.example:6380/2")
    assert describe_store(redis) == "redis://cache.example:6380/2"
    hybrid = Settings(
        storage_mode="hybrid", redis_url="rediss://user:pw@cache:6390", database_url="postgresql+asyncpg://u:pw@db/x"
    )
    assert describe_store(hybrid) == "rediss://cache:6390/0 and postgresql+asyncpg://u:***@db/x"
    sql = Settings(database_url="postgresql+asyncpg://u:pw@db/x", database_schema="ledger")
    assert describe_store(sql) == "postgresql+asyncpg://u:***@db/x (schema ledger)"


def test_serve_on_a_missing_token_is_the_same_line(cli: Cli) -> None:
    result = cli("serve", "--insecure-local", "--port", "1", TOKEN_SYMBOL="NOPE")  # fails before binding
    line = assert_one_line_error(result, "token_not_initialized")
    assert line == f"error [token_not_initialized]: token 'NOPE' does not exist in {cli.url}; run tokenbank init"
    assert _symbols(cli) == ["TST"]
