"""``tokenbank split``: legs by percentage and amount, --remainder-to, --key replays, one-line refusals."""

from __future__ import annotations

from tests.cli.conftest import Cli, assert_one_line_error


def test_split_pays_every_leg_and_replays_with_its_key(cli: Cli) -> None:
    args = ("split", "treasury", "100", "platform:10%", "ref:2.5%", "a:b:1.25", "--remainder-to", "creator")
    txs = cli.json(*args, "--key", "order-1", "--metadata", '{"order": 1}', "--reason", "purchase")
    assert [(t["to_user_id"], t["amount"]) for t in txs] == [
        ("platform", "10.00"), ("ref", "2.50"), ("a:b", "1.25"), ("creator", "86.25")
    ]  # fmt: skip
    split_id = txs[0]["metadata"]["split_id"]
    assert all(t["metadata"] == {"order": 1, "split_id": split_id} and t["reason"] == "purchase" for t in txs)
    again = cli.json(*args, "--idempotency-key", "order-1", "--metadata", '{"order": 1}', "--reason", "purchase")
    assert [t["id"] for t in again] == [t["id"] for t in txs]
    assert cli.json("balance", "treasury")["balance"] == "900.00"
    assert_one_line_error(cli(*args, "--key", "order-1"), "idempotency_conflict")

    table = cli("split", "treasury", "0.03", "alice:50%", "bob:50%")
    assert table.exit_code == 0, table.output
    assert "split " in table.stdout and "0.02" in table.stdout and "0.03 TST from treasury" in table.stdout


def test_split_refusals_are_one_line_or_usage_errors(cli: Cli) -> None:
    cli.json("transfer", "treasury", "alice", "5")
    assert_one_line_error(cli("split", "alice", "5.01", "bob:50%", "carol:50%"), "insufficient_balance")
    assert_one_line_error(cli("split", "alice", "1", "bob:60%", "carol:41%"), "invalid_amount")
    assert_one_line_error(cli("split", "alice", "1", "bob:1", "bob:2"), "invalid_account")
    assert_one_line_error(cli("split", "alice", "1", "bob:-5"), "invalid_amount")
    assert_one_line_error(cli("split", "alice", "-1", "bob:50%"), "invalid_amount")
    assert cli("split", "alice", "1", "bob").exit_code == 2
    assert cli("split", "alice", "1").exit_code == 2
    assert cli.json("balance", "alice")["balance"] == "5.00"
