"""Writers in several processes' worth of pools while a consumer follows the feed: it sees every seq, none lost.

On PostgreSQL seqs are drawn inside concurrent transactions and may become visible out of order; a consumer that
moved its cursor past a seq whose lower neighbour was still in flight would lose that neighbour for good.
"""

from __future__ import annotations

import asyncio

from tests.backends import BoundBackend
from tests.feed_support import settle
from tokenbank import TokenBank

WRITERS = 3  # banks, each with its own connections
TASKS = 6  # concurrent writers per bank
EACH = 40


async def test_a_consumer_following_concurrent_writers_misses_no_seq(durable_backend: BoundBackend) -> None:
    settings = durable_backend.settings(initial_supply=1_000_000)
    banks = [TokenBank(settings) for _ in range(WRITERS)]
    for bank in banks:
        await bank.open()
    reader = TokenBank(settings)
    await reader.open()
    seen: list[int] = []
    done = asyncio.Event()

    async def write(bank: TokenBank, n: int) -> None:
        for i in range(EACH):
            await bank.transfer("treasury", f"user{n}-{i % 7}", 1)

    async def follow() -> None:
        while True:
            finished = done.is_set()
            handled = await reader.events.consume_once("follower", lambda tx: seen.append(tx.seq), batch=17)
            if finished and handled == 0:
                return
            if handled == 0:
                await asyncio.sleep(0.002)

    try:
        follower = asyncio.create_task(follow())
        await asyncio.gather(*(write(bank, b * TASKS + t) for b, bank in enumerate(banks) for t in range(TASKS)))
        await settle(reader)
        done.set()
        await asyncio.wait_for(follower, 120)
        everything = []
        after = 0
        while page := await reader.events.read(after_seq=after, limit=1000):
            everything += [tx.seq for tx in page]
            after = page[-1].seq
        assert len(everything) == 1 + WRITERS * TASKS * EACH  # the initial mint and every transfer
        assert seen == everything, f"missed {sorted(set(everything) - set(seen))[:10]}"
    finally:
        for bank in (*banks, reader):
            await bank.close()
