"""The durable feed, webhooks and monitors from synchronous code: a plain handler runs off the bank's loop, so it
may call the blocking bank itself, and its cursor is kept in the store as with the async bank."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from tokenbank import Transaction, TransactionType
from tokenbank.blocking import TokenBank


def test_a_plain_handler_may_call_the_bank(sync_bank: TokenBank) -> None:
    for n in range(3):
        sync_bank.transfer("treasury", f"u{n}", "1")
    seen: list[tuple[int, Decimal, str]] = []

    def handler(tx: Transaction) -> None:
        # On a worker thread, not the loop's: a blocking call from here must not wait for itself.
        if tx.to_user_id is not None:
            seen.append((tx.seq, sync_bank.get_balance(tx.to_user_id), threading.current_thread().name))

    assert sync_bank.events.consume_once("credits", handler, batch=100) == 4  # the initial mint, then 3 transfers
    assert [seq for seq, _, _ in seen] == sorted(seq for seq, _, _ in seen)
    assert all(name != "tokenbank-loop" for _, _, name in seen)
    assert sync_bank.events.cursor("credits") == seen[-1][0]
    assert sync_bank.events.consume_once("credits", handler) == 0  # caught up: nothing handed twice

    sync_bank.transfer("u0", "u1", "1")
    assert sync_bank.events.consume("credits", handler, poll_interval=0.01, max_batches=1) == 1
    assert [tx.type for tx in sync_bank.events.read(after_seq=seen[-2][0])] == [TransactionType.TRANSFER]


def test_a_failing_handler_keeps_the_cursor_before_it(sync_bank: TokenBank) -> None:
    sync_bank.transfer("treasury", "alice", "1")

    def handler(tx: Transaction) -> None:
        if tx.type is TransactionType.TRANSFER:
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        sync_bank.events.consume_once("strict", handler)
    [mint, transfer] = sync_bank.events.read()
    assert sync_bank.events.cursor("strict") == mint.seq < transfer.seq


def test_webhooks_and_monitors(sync_bank: TokenBank) -> None:
    endpoint = sync_bank.webhooks.add("https://example.invalid/hook")
    assert endpoint.secret.startswith("whsec_")
    assert [e.id for e in sync_bank.webhooks.list()] == [endpoint.id]
    monitor = sync_bank.monitors.add("alice", below="5")
    assert [m.id for m in sync_bank.monitors.list()] == [monitor.id]
    sync_bank.webhooks.remove(endpoint.id)
    sync_bank.monitors.remove(monitor.id)
    assert sync_bank.webhooks.list() == [] and sync_bank.monitors.list() == []
