"""``hold``, ``capture``, ``void``, ``reverse`` on the command line; idempotent mint and burn; negative amounts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli, assert_one_line_error


def balances(cli: Cli, *users: str) -> dict[str, tuple[str, str]]:
    """(spendable, held) per account."""
    found = {user: cli.json("balance", user) for user in users}
    return {user: (data["balance"], data["held"]) for user, data in found.items()}


def test_hold_then_full_capture(cli: Cli) -> None:
    cli.json("transfer", "treasury", "alice", "100")
    hold = cli.json("hold", "alice", "bob", "30", "--expires-in", "600", "--reason", "order 7")
    assert [hold[k] for k in ("status", "from_user_id", "to_user_id", "amount")] == ["pending", "alice", "bob", "30.00"]
    assert hold["captured_amount"] == "0.00" and hold["replayed"] is False
    assert balances(cli, "alice", "bob") == {"alice": ("70.00", "30.00"), "bob": ("0.00", "0.00")}
    # Held funds are not spendable.
    assert_one_line_error(cli("transfer", "alice", "carol", "70.01"), "insufficient_balance")

    captured = cli.json("capture", hold["id"])
    assert (captured["status"], captured["captured_amount"]) == ("captured", "30.00")
    assert balances(cli, "alice", "bob") == {"alice": ("70.00", "0.00"), "bob": ("30.00", "0.00")}
    assert_one_line_error(cli("capture", hold["id"]), "hold_state")
    assert_one_line_error(cli("void", hold["id"]), "hold_state")


def test_partial_capture_releases_the_rest(cli: Cli) -> None:
    cli.json("transfer", "treasury", "alice", "50")
    hold = cli.json("hold", "alice", "bob", "20", "--expires-in", "60")
    assert_one_line_error(cli("capture", hold["id"], "20.01"), "invalid_amount")
    result = cli("capture", hold["id"], "12.50")
    assert result.exit_code == 0, result.output
    assert "captured" in result.stdout and "12.50 TST" in result.stdout
    assert balances(cli, "alice", "bob") == {"alice": ("37.50", "0.00"), "bob": ("12.50", "0.00")}
    assert cli.json("supply")["total_supply"] == "1000.00"


def test_void_returns_the_funds(cli: Cli) -> None:
    cli.json("transfer", "treasury", "alice", "10")
    hold = cli("hold", "alice", "bob", "4", "--expires-in", "60")
    assert hold.exit_code == 0, hold.output
    assert "hold (pending)" in hold.stdout and "4.00 TST" in hold.stdout
    hold_id = cli.json("history", "alice", "--type", "hold")["items"][0]["hold_id"]
    assert balances(cli, "alice")["alice"] == ("6.00", "4.00")
    voided = cli.json("void", hold_id, "--reason", "cancelled")
    assert voided["status"] == "voided"
    assert balances(cli, "alice", "bob") == {"alice": ("10.00", "0.00"), "bob": ("0.00", "0.00")}
    assert_one_line_error(cli("void", "00000000-0000-0000-0000-000000000000"), "hold_not_found")


def test_hold_idempotency_key_and_bad_expiry(cli: Cli) -> None:
    cli.json("transfer", "treasury", "alice", "10")
    first = cli.json("hold", "alice", "bob", "3", "--expires-in", "60", "--idempotency-key", "cart-1")
    again = cli.json("hold", "alice", "bob", "3", "--expires-in", "60", "--idempotency-key", "cart-1")
    assert again["id"] == first["id"] and again["replayed"] is True
    assert balances(cli, "alice")["alice"] == ("7.00", "3.00")
    assert_one_line_error(cli("hold", "alice", "bob", "3", "--expires-in", "0"), "invalid_request")
    assert_one_line_error(cli("hold", "alice", "bob", "3", "--expires-in", "-5"), "invalid_request")
    assert_one_line_error(cli("hold", "alice", "bob", "11", "--expires-in", "60"), "insufficient_balance")
    assert cli("hold", "alice", "bob", "3").exit_code == 2  # --expires-in is required


def test_reverse_undoes_a_transfer_once(cli: Cli) -> None:
    tx = cli.json("transfer", "treasury", "alice", "25")
    assert cli("reverse", tx["id"]).exit_code == 2  # --reason is required
    reversal = cli.json("reverse", tx["id"], "--reason", "refund")
    assert reversal["type"] == "reversal" and reversal["reverses_id"] == tx["id"]
    assert (reversal["from_user_id"], reversal["to_user_id"], reversal["amount"]) == ("alice", "treasury", "25.00")
    assert balances(cli, "alice", "treasury") == {"alice": ("0.00", "0.00"), "treasury": ("1000.00", "0.00")}
    assert_one_line_error(cli("reverse", tx["id"], "--reason", "again"), "transaction_state")
    assert_one_line_error(
        cli("reverse", "00000000-0000-0000-0000-000000000000", "--reason", "x"), "transaction_not_found"
    )
    table = cli("reverse", cli.json("transfer", "treasury", "bob", "1")["id"], "--reason", "oops")
    assert table.exit_code == 0 and "reversal" in table.stdout


def test_mint_and_burn_take_an_idempotency_key_and_metadata(cli: Cli) -> None:
    first = cli.json("mint", "alice", "5", "--idempotency-key", "reward-1", "--metadata", '{"campaign": "spring"}')
    again = cli.json("mint", "alice", "5", "--idempotency-key", "reward-1", "--metadata", '{"campaign": "spring"}')
    assert again["id"] == first["id"] and first["metadata"] == {"campaign": "spring"}
    assert_one_line_error(cli("mint", "alice", "6", "--idempotency-key", "reward-1"), "idempotency_conflict")
    burned = cli.json("burn", "alice", "2", "--idempotency-key", "fee-1")
    assert cli.json("burn", "alice", "2", "--idempotency-key", "fee-1")["id"] == burned["id"]
    assert balances(cli, "alice")["alice"] == ("3.00", "0.00")
    assert cli.json("supply")["total_supply"] == "1003.00"


@pytest.mark.parametrize(
    "args",
    [
        ("transfer", "treasury", "alice", "-5"),
        ("transfer", "treasury", "alice", "-0.5", "--reason", "x"),
        ("mint", "alice", "-5"),
        ("burn", "treasury", "-1e3"),
        ("hold", "treasury", "alice", "-5", "--expires-in", "60"),
        ("capture", "00000000-0000-0000-0000-000000000000", "-5"),
    ],
)
def test_a_negative_amount_is_an_amount_error(cli: Cli, args: tuple[str, ...]) -> None:
    line = assert_one_line_error(cli(*args), "invalid_amount")
    assert "plain decimal number" in line or "must be positive" in line
    assert cli.json("supply")["total_supply"] == "1000.00"


def test_unknown_options_are_still_usage_errors(cli: Cli) -> None:
    result = cli("transfer", "treasury", "alice", "5", "--reson", "typo")
    assert result.exit_code == 2
    assert "No such option" in result.output
    assert cli.json("balance", "alice")["balance"] == "0.00"


@pytest.mark.parametrize(
    "command",
    ["init", "balance", "transfer", "mint", "burn", "hold", "capture", "void", "reverse", "top", "history", "supply",
     "verify", "reconcile", "rebuild-cache", "token show", "token configure", "account show", "account freeze",
     "account unfreeze", "account close", "account limits"],
)  # fmt: skip
def test_json_flag_is_where_the_docs_say(cli: Cli, command: str) -> None:
    assert "--json" in cli(*command.split(), "--help").stdout
    docs = (Path(__file__).parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    assert f"`{command}`" in docs.split("Commands that take `--json`", 1)[1].split("\n\n", 1)[0]


@pytest.mark.parametrize("command", ["export", "serve", "sync", "demo"])
def test_commands_without_json_flag(cli: Cli, command: str) -> None:
    assert "--json" not in cli(command, "--help").stdout
