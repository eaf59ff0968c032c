"""kill -9 of a feed consumer, at random points, while thousands of transfers are written: after restarts the
handler has seen every seq at least once, and the idempotent handler's effects are exactly once.

The consumer runs in its own process (feed_consumer.py); this test writes the transfers and kills and restarts
it until the writes are done and the last consumer has caught up.

20,000 transfers by default (``TOKENBANK_KILL_TRANSFERS`` sets another count): measured at 18-32 s for the whole
test on 2 cores shared with other work (load average ~3), 7 s for 5,000.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from tests.backends import BACKENDS, PG_SCHEMA, POSTGRES_URL, Scope
from tokenbank import TokenBank

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TRANSFERS = int(os.environ.get("TOKENBANK_KILL_TRANSFERS", "20000"))
TASKS = 32
MIN_KILLS = 3
"""Kills go on while the transfers are written, and until there were this many (then during the catch-up)."""
CONSUMER = Path(__file__).with_name("feed_consumer.py")


async def test_a_consumer_killed_at_random_points_loses_nothing(tmp_path: Path, clean_env: object) -> None:
    [pg] = [b for b in BACKENDS if b.name == "postgres"]
    settings = pg.bind(Scope(tmp_path)).settings(initial_supply=10_000_000)
    table = f"kill_{settings.symbol.lower()}"
    raw = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""), server_settings={"search_path": PG_SCHEMA})
    env = {
        **os.environ, "DATABASE_URL": settings.database_url, "TOKEN_SYMBOL": settings.symbol,
        "TOKEN_DATABASE_SCHEMA": PG_SCHEMA, "KILL_TABLE": table, "TOKEN_HOLD_SWEEP_INTERVAL": "0",
    }  # fmt: skip
    kills = 0
    process: asyncio.subprocess.Process | None = None
    try:
        async with TokenBank(settings) as bank:
            await raw.execute(f"CREATE TABLE {table}_effects (seq bigint PRIMARY KEY, amount bigint NOT NULL)")
            await raw.execute(f"CREATE TABLE {table}_seen (seq bigint NOT NULL)")

            async def write(task: int) -> None:
                for n in range(task, TRANSFERS, TASKS):
                    await bank.transfer("treasury", f"user{n % 500}", 1 + n % 7)

            started = time.monotonic()
            writers = asyncio.gather(*(write(t) for t in range(TASKS)))
            while True:
                process = await asyncio.create_subprocess_exec(sys.executable, str(CONSUMER), env=env)
                if writers.done() and kills >= MIN_KILLS:
                    break
                await asyncio.sleep(random.uniform(0.4, 1.5))  # the process takes ~0.5 s to start
                process.send_signal(signal.SIGKILL)
                await process.wait()
                kills += 1
            await writers
            written = time.monotonic() - started
            last = (await bank.events.read(after_seq=0, limit=1))[0].seq
            feed = [last]
            while page := await bank.events.read(after_seq=feed[-1], limit=10_000):
                feed += [tx.seq for tx in page]
            deadline = time.monotonic() + 120
            while await bank.events.cursor("kill-test") < feed[-1]:
                assert time.monotonic() < deadline, "the last consumer did not catch up"
                assert process.returncode is None, "the consumer died"
                await asyncio.sleep(0.2)
            process.send_signal(signal.SIGKILL)
            await process.wait()
        seen = [r["seq"] for r in await raw.fetch(f"SELECT seq FROM {table}_seen")]
        effects = await raw.fetch(f"SELECT seq, amount FROM {table}_effects ORDER BY seq")
        assert len(feed) == TRANSFERS + 1
        assert set(seen) == set(feed), f"never handled: {sorted(set(feed) - set(seen))[:10]}"
        assert [r["seq"] for r in effects] == feed  # exactly once, whatever was handled twice
        expected = 1_000_000_000 + sum(100 * (1 + n % 7) for n in range(TRANSFERS))
        assert sum(r["amount"] for r in effects) == expected
        print(
            f"\n{TRANSFERS} transfers in {written:.1f} s, consumer killed {kills} times, "
            f"{len(seen) - len(set(seen))} redeliveries, effects exactly once"
        )
        assert kills >= MIN_KILLS
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        await raw.execute(f"DROP TABLE IF EXISTS {table}_seen, {table}_effects")
        await raw.close()
