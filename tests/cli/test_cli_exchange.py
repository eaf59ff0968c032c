"""``tokenbank exchange``: two tokens of one SQLite file change hands, --rate, --key replays, one-line refusals."""

from __future__ import annotations

import json

from tests.cli.conftest import Cli, assert_one_line_error


def test_exchange_moves_both_tokens_and_replays_with_its_key(cli: Cli) -> None:
    gem = {"TOKEN_SYMBOL": "GEM", "TOKEN_DECIMALS": "0", "TOKEN_INITIAL_SUPPLY": "500"}
    assert cli("init", **gem).exit_code == 0
    assert cli("transfer", "treasury", "shop", "100", **gem).exit_code == 0
    cli.json("transfer", "treasury", "alice", "50")
    args = ("exchange", "alice", "25.50", "shop", "10", "--for", "GEM")
    done = cli.json(*args, "--key", "offer-1", "--metadata", '{"offer": 1}', "--reason", "gem shop")
    assert (done["pay_symbol"], done["receive_symbol"], done["replayed"]) == ("TST", "GEM", False)
    pay = done["pay"]
    assert (pay["from_user_id"], pay["to_user_id"], pay["amount"]) == ("alice", "shop", "25.50")
    assert (done["receive"]["to_user_id"], done["receive"]["amount"]) == ("alice", "10")
    assert done["receive"]["metadata"]["exchange_tx_id"] == done["pay"]["id"]
    again = cli.json(*args, "--key", "offer-1", "--metadata", '{"offer": 1}', "--reason", "gem shop")
    assert (again["id"], again["replayed"]) == (done["id"], True)
    assert cli.json("balance", "alice")["balance"] == "24.50"
    assert json.loads(cli("balance", "alice", "--json", **gem).stdout)["balance"] == "10"

    rated = cli.json("exchange", "alice", "4.99", "shop", "--for", "GEM", "--rate", "0.4")
    assert rated["receive"]["amount"] == "1"  # 1.996 gems, rounded down
    table = cli("exchange", "alice", "1", "shop", "1", "--for", "GEM")
    assert table.exit_code == 0, table.output
    assert "exchange " in table.stdout and "GEM" in table.stdout and "TST" in table.stdout


def test_exchange_refusals_are_one_line_or_usage_errors(cli: Cli) -> None:
    assert cli("init", TOKEN_SYMBOL="GEM", TOKEN_DECIMALS="0").exit_code == 0
    cli.json("transfer", "treasury", "alice", "5")
    assert_one_line_error(cli("exchange", "alice", "5.01", "treasury", "1", "--for", "GEM"), "insufficient_balance")
    assert_one_line_error(cli("exchange", "alice", "1", "treasury", "1", "--for", "TST"), "invalid_request")
    assert_one_line_error(cli("exchange", "alice", "1", "treasury", "1", "--for", "NOPE"), "token_not_initialized")
    assert_one_line_error(cli("exchange", "alice", "-1", "treasury", "1", "--for", "GEM"), "invalid_amount")
    assert_one_line_error(cli("exchange", "alice", "1", "treasury", "--for", "GEM"), "invalid_request")
    assert_one_line_error(cli("exchange", "alice", "1", "treasury", "--for", "GEM", "--rate", "x"), "invalid_amount")
    assert cli("exchange", "alice", "1", "treasury", "1").exit_code == 2
    assert cli.json("balance", "alice")["balance"] == "5.00"
