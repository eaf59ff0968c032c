"""``stake`` and ``unstake`` on the command line: held until the unlock time, then released with the reward."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tests.cli.conftest import Cli, assert_one_line_error


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0).isoformat()


def test_stake_then_unstake_with_its_reward(cli: Cli) -> None:
    cli.json("transfer", "treasury", "alice", "100")
    until = _at(4)  # far enough ahead that a busy machine's first calls are still before it
    stake = cli.json("stake", "alice", "40", "--until", until, "--reward", "2.50", "--idempotency-key", "s1")
    assert [stake[k] for k in ("status", "user_id", "amount", "reward")] == ["staked", "alice", "40.00", "2.50"]
    assert cli.json("stake", "alice", "40", "--until", until, "--reward", "2.50", "--idempotency-key", "s1")["replayed"]
    assert (cli.json("balance", "alice")["balance"], cli.json("balance", "alice")["held"]) == ("60.00", "40.00")
    assert_one_line_error(cli("unstake", stake["id"]), "stake_locked")
    assert_one_line_error(cli("void", stake["id"]), "hold_state")
    time.sleep(max(0.0, (datetime.fromisoformat(until) - datetime.now(UTC)).total_seconds()) + 0.05)
    shown = cli("unstake", stake["id"], "--reason", "pool ended")
    assert shown.exit_code == 0, shown.output
    assert "stake (released)" in shown.stdout and "2.50 TST" in shown.stdout
    assert cli.json("balance", "alice")["balance"] == "102.50"
    assert cli.json("supply")["total_supply"] == "1002.50"
    assert cli.json("unstake", stake["id"])["replayed"] is True


def test_bad_stakes_are_one_line_errors(cli: Cli) -> None:
    cli.json("transfer", "treasury", "alice", "10")
    assert_one_line_error(cli("stake", "alice", "11", "--until", _at(60)), "insufficient_balance")
    assert_one_line_error(cli("stake", "alice", "1", "--until", _at(-60)), "invalid_request")
    assert_one_line_error(cli("stake", "alice", "1", "--until", _at(60), "--reward", "-1"), "invalid_amount")
    assert_one_line_error(cli("unstake", "00000000-0000-75ac-8000-000000000000"), "stake_not_found")
    assert cli("stake", "alice", "1", "--until", "tomorrow").exit_code == 2
    assert cli.json("balance", "alice")["balance"] == "10.00"
