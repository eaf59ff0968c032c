"""``tokenbank account show|freeze|unfreeze|close|limits``: controls from the command line, one-line errors."""

from __future__ import annotations

from tests.cli.conftest import Cli, assert_one_line_error


def test_freeze_and_unfreeze(cli: Cli) -> None:
    cli.json("transfer", "treasury", "alice", "100")
    assert cli.json("account", "show", "alice") == {
        "user_id": "alice", "balance": "100.00", "held": "0.00", "frozen": None, "closed": False,
        "max_balance": None, "spend_limit": None, "spent_in_window": "0.00", "overdraft": None,
    }  # fmt: skip
    frozen = cli.json("account", "freeze", "alice", "--reason", "cheating in ranked")
    assert frozen["frozen"] == {"debits": True, "credits": False, "reason": "cheating in ranked", "until": None}
    line = assert_one_line_error(cli("transfer", "alice", "bob", "1"), "account_frozen")
    assert "may not send" in line
    cli.json("transfer", "treasury", "alice", "1")  # credits still arrive

    until = cli.json("account", "freeze", "alice", "--reason", "r", "--both", "--until", "2999-01-01T02:00:00+02:00")
    assert until["frozen"] == {
        "debits": True,
        "credits": True,
        "reason": "r",
        "until": "2999-01-01T00:00:00.000000+00:00",
    }
    assert_one_line_error(cli("mint", "alice", "1"), "account_frozen")
    credits = cli.json("account", "freeze", "alice", "--reason", "r", "--credits")["frozen"]
    assert (credits["debits"], credits["credits"]) == (False, True)

    table = cli("account", "show", "alice")
    assert table.exit_code == 0 and "credits, until unfrozen: r" in table.stdout and "101.00 TST" in table.stdout
    assert cli.json("account", "unfreeze", "alice")["frozen"] is None
    cli.json("transfer", "alice", "bob", "1")


def test_limits_and_close(cli: Cli) -> None:
    cli.json("transfer", "treasury", "alice", "100")
    limited = cli.json("account", "limits", "alice", "--max-balance", "150", "--spend", "10/3600")
    assert (limited["max_balance"], limited["spend_limit"]) == ("150.00", {"amount": "10.00", "seconds": 3600})
    cli.json("transfer", "alice", "bob", "10")
    assert "spend_per_window" in assert_one_line_error(cli("transfer", "alice", "bob", "0.01"), "limit_exceeded")
    assert "max_balance" in assert_one_line_error(cli("mint", "alice", "60.01"), "limit_exceeded")
    table = cli("account", "limits", "alice", "--spend", "500/86400")  # replaces both: no max balance any more
    assert table.exit_code == 0, table.output
    assert "500.00 TST per 86400 s (spent 10.00" in table.stdout and "none" in table.stdout
    cleared = cli.json("account", "limits", "alice", "--clear")
    assert (cleared["max_balance"], cleared["spend_limit"]) == (None, None)

    assert_one_line_error(cli("account", "close", "alice"), "transaction_state")
    assert cli.json("account", "close", "carol")["closed"] is True
    assert cli.json("account", "limits", "dave", "--overdraft", "20")["overdraft"] == "20.00"
    cli.json("transfer", "dave", "alice", "20")
    assert "'dave' has 0.00 available" in assert_one_line_error(cli("burn", "dave", "0.01"), "insufficient_balance")
    table = cli("account", "show", "dave")
    assert table.exit_code == 0 and "-20.00 TST" in table.stdout and "20.00 TST" in table.stdout
    owed = assert_one_line_error(cli("account", "limits", "dave", "--overdraft", "19.99"), "transaction_state")
    assert "owes more than the new overdraft" in owed
    assert_one_line_error(cli("transfer", "alice", "carol", "1"), "account_closed")
    assert_one_line_error(cli("account", "unfreeze", "carol"), "account_closed")


def test_bad_options(cli: Cli) -> None:
    usage = [
        ("account", "freeze", "alice"),  # --reason is required
        ("account", "freeze", "alice", "--reason", "r", "--credits", "--both"),
        ("account", "freeze", "alice", "--reason", "r", "--until", "tomorrow"),
        ("account", "freeze", "alice", "--reason", "r", "--until", "2999-01-01T00:00:00"),  # no offset
        ("account", "limits", "alice"),
        ("account", "limits", "alice", "--clear", "--max-balance", "5"),
        ("account", "limits", "alice", "--clear", "--overdraft", "5"),
        ("account", "limits", "alice", "--spend", "500"),
        ("account", "limits", "alice", "--spend", "500/1.5"),
    ]
    for args in usage:
        assert cli(*args).exit_code == 2, args
    past = cli("account", "freeze", "alice", "--reason", "r", "--until", "2020-01-01T00:00Z")
    assert "until must be in the future" in assert_one_line_error(past, "invalid_request")
    assert_one_line_error(cli("account", "limits", "alice", "--max-balance", "-5"), "invalid_amount")
    assert_one_line_error(cli("account", "limits", "alice", "--overdraft", "0.001"), "invalid_amount")
    assert_one_line_error(cli("account", "limits", "alice", "--spend", "1e3/60"), "invalid_amount")
    assert_one_line_error(cli("account", "limits", "alice", "--spend", "5/0"), "invalid_request")
    assert_one_line_error(cli("account", "show", ""), "invalid_account")
    assert cli.json("account", "show", "alice")["frozen"] is None
