"""The ledger feed and durable consumers, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.backends import BoundBackend
from tests.feed_support import settle
from tokenbank import TokenBank
from tokenbank.errors import InvalidRequestError
from tokenbank.models import Transaction


async def _write_every_type(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 100)
    await bank.mint("bob", 50, reason="promo")
    await bank.burn("bob", 5, reason="fee")
    hold = await bank.hold("alice", "bob", 10, expires_in=timedelta(minutes=5))
    await bank.capture(hold.id)
    other = await bank.hold("alice", "bob", 3, expires_in=timedelta(minutes=5))
    await bank.void(other.id)
    tx = await bank.transfer("alice", "carol", 7)
    await bank.reverse(tx.id, reason="mistake")


async def test_read_returns_every_transaction_in_seq_order(bank: TokenBank) -> None:
    await _write_every_type(bank)
    await settle(bank)
    feed = await bank.events.read()
    seqs = [tx.seq for tx in feed]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [tx.type.value for tx in feed] == [
        "mint", "transfer", "mint", "burn", "hold", "capture", "hold", "void", "transfer", "reversal",
    ]  # fmt: skip
    assert feed[1].amount == 100 and feed[1].to_user_id == "alice"
    # Paging: after a seq, with a limit, gives the same sequence.
    pages: list[Transaction] = []
    after = 0
    while page := await bank.events.read(after_seq=after, limit=3):
        pages += page
        after = page[-1].seq
    assert pages == feed
    assert await bank.events.read(after_seq=feed[-1].seq) == []


async def test_a_consumer_resumes_after_its_last_acknowledged_seq(backend: BoundBackend) -> None:
    settings = backend.settings(initial_supply=1000)
    seen: list[int] = []
    async with TokenBank(settings) as bank:
        for n in range(5):
            await bank.transfer("treasury", f"u{n}", 1)
        await settle(bank)
        assert await bank.events.cursor("billing") == 0
        assert await bank.events.consume_once("billing", lambda tx: seen.append(tx.seq), batch=4) == 4
        cursor = await bank.events.cursor("billing")
        assert cursor == seen[-1]
        if not backend.persistent:
            return
    async with TokenBank(settings) as again:
        await again.transfer("treasury", "late", 1)
        await settle(again)
        assert await again.events.cursor("billing") == cursor
        handled = await again.events.consume("billing", lambda tx: seen.append(tx.seq), batch=2, max_batches=1)
        handled += await again.events.consume("billing", lambda tx: seen.append(tx.seq), batch=100, max_batches=1)
        assert handled == 3
        feed = await again.events.read()
        assert seen == [tx.seq for tx in feed]
        assert await again.events.consume_once("billing", lambda tx: seen.append(tx.seq)) == 0


async def test_the_cursor_moves_only_past_what_the_handler_returned_from(bank: TokenBank) -> None:
    for n in range(4):
        await bank.transfer("treasury", f"u{n}", 1)
    await settle(bank)
    feed = await bank.events.read()
    calls: list[int] = []

    def handler(tx: Transaction) -> None:
        calls.append(tx.seq)
        if tx.seq == feed[2].seq and calls.count(tx.seq) == 1:
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await bank.events.consume_once("c", handler)
    assert await bank.events.cursor("c") == feed[1].seq
    assert await bank.events.consume_once("c", handler) == 3  # the failed one again, then the rest
    assert calls == [tx.seq for tx in feed[:3]] + [tx.seq for tx in feed[2:]]
    assert await bank.events.cursor("c") == feed[-1].seq


async def test_async_handlers_and_consumers_apart(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 1)
    await settle(bank)
    got: dict[str, list[str]] = {"a": [], "b": []}

    async def into(name: str, tx: Transaction) -> None:
        got[name].append(tx.id)

    await bank.events.consume_once("a", lambda tx: into("a", tx))
    await bank.transfer("treasury", "alice", 1)
    await settle(bank)
    await bank.events.consume_once("a", lambda tx: into("a", tx))
    await bank.events.consume_once("b", lambda tx: into("b", tx))
    assert got["a"] == got["b"] and len(got["a"]) == 3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.events.read(after_seq=-1), "after_seq"),
        (lambda b: b.events.read(limit=0), "limit"),
        (lambda b: b.events.read(after_seq=True), "after_seq"),
        (lambda b: b.events.cursor(""), "consumer name"),
        (lambda b: b.events.consume_once("x\n", print), "consumer name"),
        (lambda b: b.events.consume_once("x", print, batch=0), "batch"),
    ],
)
async def test_bad_arguments_are_refused(bank: TokenBank, call: object, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        await call(bank)  # type: ignore[operator]
