"""The ``tokenbank`` command: every command on a scratch SQLite file, JSON output, one-line errors, the demo."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, assert_one_line_error, runner
from tokenbank.cli import app
from tokenbank.cli.runtime import mask_url
from tokenbank.storage.sql.schema import accounts


# happy paths ---------------------------------------------------------------------------------------------------
def test_init_creates_the_token_and_is_idempotent(cli: Cli) -> None:
    info = cli.json("init")
    assert info["symbol"] == "TST"
    assert info["total_supply"] == "1000.00"
    assert info["database"] == cli.url
    table = cli("init")
    assert table.exit_code == 0
    assert "TST" in table.stdout and "1,000.00" in table.stdout


def test_transfer_mint_burn_balance_supply_top(cli: Cli) -> None:
    tx = cli.json("transfer", "treasury", "alice", "12.50", "--metadata", '{"order": 42}', "--reason", "pay")
    assert tx["type"] == "transfer"
    assert (tx["from_user_id"], tx["to_user_id"], tx["amount"]) == ("treasury", "alice", "12.50")
    assert tx["metadata"] == {"order": 42} and tx["reason"] == "pay"
    assert cli.json("mint", "bob", "5", "--reason", "reward")["amount"] == "5.00"
    assert cli.json("burn", "bob", "2.25")["type"] == "burn"

    assert cli.json("balance", "alice") == {"user_id": "alice", "balance": "12.50", "held": "0.00", "rank": 1}
    assert cli.json("balance", "nobody")["balance"] == "0.00"
    supply = cli.json("supply")
    assert (supply["total_supply"], supply["circulating_supply"], supply["max_supply"]) == ("1002.75", "15.25", None)
    assert cli.json("top") == [
        {"rank": 1, "user_id": "alice", "balance": "12.50"},
        {"rank": 2, "user_id": "bob", "balance": "2.75"},
    ]
    assert cli.json("top", "--limit", "1", "--offset", "1") == [{"rank": 2, "user_id": "bob", "balance": "2.75"}]

    for args, shown in [
        (("balance", "alice"), "12.50 TST"),
        (("top",), "alice"),
        (("supply",), "1,002.75"),
        (("transfer", "alice", "bob", "1"), "1.00 TST"),
    ]:
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert shown in result.stdout


def test_idempotency_key_applies_once(cli: Cli) -> None:
    first = cli.json("transfer", "treasury", "alice", "3", "--idempotency-key", "order-1")
    again = cli.json("transfer", "treasury", "alice", "3", "--idempotency-key", "order-1")
    assert again["id"] == first["id"]
    assert cli.json("balance", "alice")["balance"] == "3.00"
    assert_one_line_error(
        cli("transfer", "treasury", "alice", "4", "--idempotency-key", "order-1"), "idempotency_conflict"
    )


def test_history_pages_with_cursor_and_type_filter(cli: Cli) -> None:
    for amount in ("1", "2", "3"):
        cli.json("transfer", "treasury", "alice", amount)
    cli.json("burn", "alice", "0.5")
    page = cli.json("history", "alice", "--limit", "2")
    assert [tx["amount"] for tx in page["items"]] == ["0.50", "3.00"]
    assert page["next_cursor"]
    rest = cli.json("history", "alice", "--limit", "2", "--cursor", page["next_cursor"])
    assert [tx["amount"] for tx in rest["items"]] == ["2.00", "1.00"]
    assert rest["next_cursor"] is None
    burns = cli.json("history", "alice", "--type", "burn")
    assert [tx["type"] for tx in burns["items"]] == ["burn"]
    table = cli("history", "alice", "--limit", "2")
    assert table.exit_code == 0
    assert "--cursor" in table.stdout and "transfer" in table.stdout
    assert_one_line_error(cli("history", "alice", "--cursor", "garbage"), "invalid_request")


def test_verify_reports_ok_and_fails_on_a_tampered_ledger(cli: Cli) -> None:
    cli.json("transfer", "treasury", "alice", "10")
    report = cli.json("verify")
    assert report["ok"] is True and all(check["ok"] for check in report["checks"])
    assert "ok" in cli("verify").stdout

    with contextlib.closing(sqlite3.connect(cli.db)) as conn, conn:  # money from nowhere, behind the ledger's back
        conn.execute(f"UPDATE {accounts.name} SET balance = balance + 1 WHERE user_id = 'alice'")
    failed = cli("verify")
    assert failed.exit_code == 1
    assert "FAILED" in failed.stdout
    assert cli("verify", "--json").exit_code == 1


def test_global_options_override_the_environment(cli: Cli, tmp_path: Path) -> None:
    other = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    assert cli("--database-url", other, "--symbol", "OTH", "init").exit_code == 0
    assert cli("--database-url", other, "--symbol", "OTH", "mint", "carol", "7").exit_code == 0
    assert (
        json.loads(cli("--database-url", other, "--symbol", "OTH", "balance", "carol", "--json").stdout)["balance"]
        == "7.00"
    )
    assert cli.json("balance", "carol")["balance"] == "0.00"  # the environment's ledger is untouched
    result = cli("--mode", "postgres-only", "balance", "alice", "--json")
    assert result.exit_code == 0, result.output


# errors --------------------------------------------------------------------------------------------------------
def test_insufficient_balance_is_one_line_and_exit_1(cli: Cli) -> None:
    line = assert_one_line_error(cli("transfer", "alice", "bob", "5"), "insufficient_balance")
    assert "insufficient balance" in line
    assert_one_line_error(cli("burn", "alice", "1"), "insufficient_balance")
    assert_one_line_error(cli("transfer", "alice", "alice", "1"), "invalid_account")


@pytest.mark.parametrize(
    "amount", ["1.5e400", "1e3", "1E3", "NaN", "inf", "1_000", "0x10", "1.5.5", "12,5", "", "0.001", "0"]
)
def test_bad_amounts_are_refused_cleanly(cli: Cli, amount: str) -> None:
    line = assert_one_line_error(cli("transfer", "treasury", "alice", amount), "invalid_amount")
    assert len(line) < 200
    assert cli.json("balance", "alice")["balance"] == "0.00"


def test_usage_errors_exit_2(cli: Cli) -> None:
    assert cli("top", "--limit", "0").exit_code == 2
    assert cli("transfer", "treasury", "alice", "1", "--metadata", "{not json").exit_code == 2
    assert cli("transfer", "treasury", "alice", "1", "--metadata", "[1, 2]").exit_code == 2
    assert cli("history", "alice", "--type", "gift").exit_code == 2
    assert cli("transfer", "treasury").exit_code == 2
    assert cli("no-such-command").exit_code == 2


def test_missing_sqlite_file_is_one_line_and_not_created(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    line = assert_one_line_error(
        cli("balance", "alice", DATABASE_URL=f"sqlite+aiosqlite:///{missing}"), "configuration_error"
    )
    assert "tokenbank init" in line
    assert not missing.exists()
    no_dir = f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"
    assert "does not exist" in assert_one_line_error(cli("init", DATABASE_URL=no_dir), "configuration_error")


def test_unopenable_sqlite_file_is_one_line(cli: Cli, tmp_path: Path) -> None:
    # A directory where the file should be: the driver itself fails (and its worker thread must die quietly).
    (tmp_path / "dir.db").mkdir()
    for _ in range(3):
        assert_one_line_error(cli("init", DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'dir.db'}"), "storage_error")


def test_unreachable_database_is_one_line_without_the_password(cli: Cli) -> None:
    url = "postgresql+asyncpg://ledger:s3cr3t-pw@127.0.0.1:1/ledger"
    result = cli("--database-url", url, "supply")
    assert_one_line_error(result, "storage_unavailable")
    assert "s3cr3t-pw" not in result.output
    assert mask_url(url) == "postgresql+asyncpg://ledger:***@127.0.0.1:1/ledger"


def test_bad_configuration_names_the_variable(cli: Cli) -> None:
    line = assert_one_line_error(cli("supply", TOKEN_DECIMALS="99"), "configuration_error")
    assert "TOKEN_DECIMALS" in line
    assert "TOKEN_STORAGE_MODE" in assert_one_line_error(cli("--mode", "floppy", "supply"), "configuration_error")


# demo ----------------------------------------------------------------------------------------------------------
def test_demo_quick_runs_verifies_and_reports_throughput(cli: Cli, tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--quick", "--seed", "7"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "verify: ok" in out
    assert "operations/s" in out and "p99" in out
    assert "top 10 holders" in out and "circulating" in out
    assert "Traceback" not in result.output
    assert (tmp_path / "tokenbank-demo.db").exists()  # its own file in the current directory, not DATABASE_URL's

    again = runner.invoke(app, ["demo", "--accounts", "20", "--operations", "60", "--concurrency", "4"])
    assert again.exit_code == 0, again.output  # repeatable: the previous demo file is replaced
    assert "20 accounts, 60 operations" in again.stdout


# the installed script ------------------------------------------------------------------------------------------
def test_installed_script_end_to_end(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    script = Path(sys.executable).with_name("tokenbank")
    assert script.exists(), "install the package (pip install -e .) to get the console script"
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}", "TOKEN_INITIAL_SUPPLY": "50"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    assert run("init").returncode == 0
    assert run("transfer", "treasury", "alice", "20").returncode == 0
    assert json.loads(run("balance", "alice", "--json").stdout)["balance"] == "20.00"
    refused = run("transfer", "alice", "bob", "25")
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("error [insufficient_balance]: ")
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert run("--version").stdout.startswith("tokenbank ")
