"""The leaderboard reads its own writes on every backend, with batches touching many accounts and a few."""

from __future__ import annotations

import asyncio
import random

from tests.backends import BoundBackend
from tests.support import open_bank
from tokenbank import TokenBank, TransferRequest


async def _expected_board(bank: TokenBank, accounts: list[str]) -> list[tuple[str, int]]:
    balances = await bank.get_balances(accounts)
    rows = [(user, int(balance)) for user, balance in balances.items() if balance > 0]
    return sorted(rows, key=lambda row: (-row[1], row[0]))


async def _board(bank: TokenBank) -> list[tuple[str, int]]:
    """The whole leaderboard, page by page (a page holds at most 1,000 rows)."""
    rows: list[tuple[str, int]] = []
    while page := await bank.get_top_holders(limit=1000, offset=len(rows)):
        rows += [(h.user_id, int(h.balance)) for h in page]
    return rows


async def test_every_write_is_on_the_board_at_once(backend: BoundBackend) -> None:
    """A batch that changes 1,500 accounts at once (Redis scores them in chunked variadic ZADDs), then single
    writes: after each write, the board and every rank are exactly the balances, with no wait and no flush."""
    accounts = [f"u{n:04d}" for n in range(1500)]
    async with open_bank(backend, initial_supply=10**6, decimals=0) as bank:
        funding = [TransferRequest("treasury", user, 1 + n % 37) for n, user in enumerate(accounts)]
        assert all(r.ok for r in await bank.transfer_many(funding))
        expected = await _expected_board(bank, accounts)
        assert await _board(bank) == expected
        rng = random.Random(7)
        for _ in range(20):
            sender, receiver = rng.sample(accounts, 2)
            balance = int(await bank.get_balance(sender))
            if balance:  # sometimes empties the sender: it must leave the board
                await bank.transfer(sender, receiver, rng.choice([1, balance]))
            expected = await _expected_board(bank, accounts)
            assert await _board(bank) == expected
            for user in (sender, receiver):
                rank = next((n for n, (u, _) in enumerate(expected, 1) if u == user), None)
                assert await bank.get_rank(user) == rank


async def test_concurrent_writers_each_read_their_own_write(backend: BoundBackend) -> None:
    """Each task's read right after its own transfer sees it, while other tasks keep writing (and batching)."""
    async with open_bank(backend, initial_supply=10**6, decimals=0) as bank:

        async def player(n: int) -> None:
            user = f"p{n:03d}"
            for round_ in range(1, 6):
                await bank.transfer("treasury", user, 10 + n)
                mine = next(h for h in await bank.get_top_holders(limit=100) if h.user_id == user)
                assert int(mine.balance) == (10 + n) * round_
                assert await bank.get_rank(user) is not None

        await asyncio.gather(*(player(n) for n in range(40)))
        expected = await _expected_board(bank, [f"p{n:03d}" for n in range(40)])
        assert [(h.user_id, int(h.balance)) for h in await bank.get_top_holders(limit=100)] == expected
        assert (await bank.verify()).ok
