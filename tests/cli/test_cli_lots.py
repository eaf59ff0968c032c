"""``grant``, ``vest`` and ``lots`` on the command line: lots spent soonest expiry first, shown in spend order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.cli.conftest import Cli, assert_one_line_error


def _at(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


def test_grant_then_spend_the_soonest_expiring_lot_first(cli: Cli) -> None:
    later = cli.json("grant", "alice", "30", "--expires-at", _at(30), "--category", "promo")
    week = _at(7)
    sooner = cli.json("grant", "alice", "20", "--expires-at", week, "--idempotency-key", "g1")
    assert (later["type"], later["category"], sooner["amount"]) == ("grant", "promo", "20.00")
    assert cli.json("grant", "alice", "20", "--expires-at", week, "--idempotency-key", "g1")["id"] == sooner["id"]
    spent = cli.json("transfer", "alice", "bob", "25")
    assert spent["lot_moves"] == [
        {"lot_id": sooner["id"], "amount": "20.00"},
        {"lot_id": later["id"], "amount": "5.00"},
    ]
    lots = cli.json("lots", "alice")
    assert (lots["available"], lots["pending"]) == ("25.00", "0.00")
    assert [(lot["id"], lot["amount"]) for lot in lots["lots"]] == [(later["id"], "25.00")]
    shown = cli("lots", "alice")
    assert shown.exit_code == 0 and later["id"] in shown.stdout and "promo" in shown.stdout


def test_vest_and_bad_grants(cli: Cli) -> None:
    vested = cli.json("vest", "bob", "90", "--start", _at(0), "--duration-days", "90", "--interval-days", "30")
    assert [lot["amount"] for lot in vested["lots"]] == ["30.00", "30.00", "30.00"]
    assert cli.json("lots", "bob")["pending"] == "90.00"
    assert_one_line_error(cli("grant", "alice", "1", "--expires-at", _at(-1)), "invalid_request")
    assert_one_line_error(cli("grant", "alice", "1", "--from", "alice"), "invalid_request")
    assert_one_line_error(cli("grant", "alice", "5", "--from", "carol"), "insufficient_balance")
    assert cli("grant", "alice", "1", "--expires-at", "tomorrow").exit_code == 2
    assert cli.json("lots", "alice")["lots"] == []
