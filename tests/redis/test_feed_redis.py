"""Redis mode: the feed reads the ledger stream; a reader behind what the stream keeps gets FeedGapError."""

from __future__ import annotations

import asyncio

import pytest

from tokenbank import TokenBank
from tokenbank.errors import FeedGapError
from tokenbank.storage.redis.backend import RedisStorage


async def test_reads_from_any_seq_match_the_whole_stream(bank: TokenBank) -> None:
    # Concurrent writes: many entries share a millisecond of the stream's ids, which the seq search must handle.
    await asyncio.gather(*(bank.transfer("treasury", f"u{n % 13}", 1) for n in range(400)))
    everything = await bank.events.read(limit=10_000)
    seqs = [tx.seq for tx in everything]
    assert seqs == list(range(1, 402))
    for after in (0, 1, 2, 57, 200, 399, 400):
        page = await bank.events.read(after_seq=after, limit=25)
        assert [tx.seq for tx in page] == seqs[after : after + 25]
    assert await bank.events.read(after_seq=401) == []
    assert await bank.events.read(after_seq=10**9) == []


async def test_a_reader_behind_the_trimmed_stream_gets_feed_gap(bank: TokenBank) -> None:
    for n in range(10):
        await bank.transfer("treasury", f"u{n}", 1)
    await bank.events.consume_once("early", lambda tx: None, batch=2)
    store = bank.storage
    assert isinstance(store, RedisStorage)
    await store.client.xtrim(store.keys.stream, maxlen=4, approximate=False)
    with pytest.raises(FeedGapError, match="no longer holds seq 3") as caught:
        await bank.events.consume_once("early", lambda tx: None)
    assert caught.value.code == "feed_gap" and caught.value.http_status == 410
    assert await bank.events.cursor("early") == 2  # unchanged
    assert [tx.seq for tx in await bank.events.read(after_seq=7)] == [8, 9, 10, 11]
    with pytest.raises(FeedGapError):
        await bank.events.read(after_seq=6)
    await store.client.delete(store.keys.stream)
    with pytest.raises(FeedGapError, match="holds no transaction"):
        await bank.events.read(after_seq=10)
    assert await bank.events.read(after_seq=11) == []
