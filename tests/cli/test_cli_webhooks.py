"""``tokenbank webhooks ...``, ``tokenbank worker`` and ``tokenbank events tail`` on a SQLite ledger."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.conftest import Cli, assert_one_line_error
from tests.webhooks.receiver import running_receiver, signature_is_valid


def test_webhooks_commands_and_one_worker_round(cli: Cli) -> None:
    with running_receiver(fail_first=1) as receiver:
        endpoint = cli.json("webhooks", "add", receiver.url)
        assert endpoint["secret"].startswith("whsec_") and endpoint["events"] == ["transaction.created"]
        assert [e["id"] for e in cli.json("webhooks", "list")] == [endpoint["id"]]
        assert cli("transfer", "treasury", "alice", "5").exit_code == 0
        assert cli("worker", "--once").exit_code == 0  # the first attempt fails (500)
        [delivery] = cli.json("webhooks", "deliveries", endpoint["id"])
        assert delivery["status"] == "pending" and delivery["attempts"] == 1 and delivery["last_error"] == "HTTP 500"
        assert cli.json("webhooks", "deliveries", endpoint["id"], "--failed") == []
        redone = cli("webhooks", "redeliver", delivery["id"])  # due at once, whatever the backoff said
        assert redone.exit_code == 0 and delivery["id"] in redone.stdout
        assert cli("worker", "--once").exit_code == 0
        [delivered] = cli.json("webhooks", "deliveries", endpoint["id"])
        assert delivered["status"] == "delivered"
        last = receiver.requests[-1]
        assert signature_is_valid(endpoint["secret"], last.headers, last.body)
        check = cli("worker", "--check")
        assert check.exit_code == 0 and "event pass: at seq" in check.stdout and "0 dead letters" in check.stdout
        assert cli("webhooks", "remove", endpoint["id"]).exit_code == 0
        assert cli.json("webhooks", "list") == []
    assert_one_line_error(cli("webhooks", "remove", endpoint["id"]), "webhook_not_found")
    assert_one_line_error(cli("webhooks", "add", "ftp://nope"), "invalid_request")


def test_events_tail_prints_the_feed_as_json_lines(cli: Cli) -> None:
    assert cli("transfer", "treasury", "bob", "2").exit_code == 0
    lines = [json.loads(line) for line in cli("events", "tail").stdout.splitlines()]
    assert [(tx["type"], tx["amount"]) for tx in lines] == [("mint", "1000.00"), ("transfer", "2.00")]
    after = cli("events", "tail", "--after", str(lines[0]["seq"])).stdout.splitlines()
    assert [json.loads(line)["to_user_id"] for line in after] == ["bob"]


def test_worker_check_fails_on_a_store_that_is_down(cli: Cli, tmp_path: Path) -> None:
    result = cli("worker", "--check", DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/missing.db")
    assert result.exit_code == 1


def test_a_worker_process_delivers_and_exits_0_on_sigterm(cli: Cli) -> None:
    with running_receiver() as receiver:
        cli.json("webhooks", "add", receiver.url)
        assert cli("transfer", "treasury", "carol", "1").exit_code == 0
        env = {**os.environ, **cli.env}
        process = subprocess.Popen(
            [sys.executable, "-m", "tokenbank", "worker", "--idle-seconds", "0.1"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not receiver.acknowledged and time.monotonic() < deadline:
                time.sleep(0.05)
            assert receiver.acknowledged, "the worker delivered nothing"
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, err
        assert "worker stopped" in err
