"""A durable feed consumer run as its own process by test_feed_kill.py (killed with SIGKILL at random points).

Its handler is the idempotent pattern docs/events.md describes: the effect and the seq it came from are written
in ONE database transaction, keyed by the seq, so a transaction handed over again after a crash changes nothing
the second time. It also appends every call to a log without a key, to count the redeliveries.
Configuration comes from the environment (DATABASE_URL, TOKEN_SYMBOL, TOKEN_DATABASE_SCHEMA, KILL_TABLE).
"""

from __future__ import annotations

import asyncio
import os

import asyncpg

from tokenbank import Settings, TokenBank
from tokenbank.models import Transaction


async def main() -> None:
    settings = Settings.load(auto_create=False)
    table = os.environ["KILL_TABLE"]
    dsn = settings.database_url.replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": settings.database_schema or "public"})

    # One statement, so one transaction and one round trip: the log row and the effect commit together or not.
    handled = (
        f"WITH seen AS (INSERT INTO {table}_seen (seq) VALUES ($1)) "
        f"INSERT INTO {table}_effects (seq, amount) VALUES ($1, $2) ON CONFLICT (seq) DO NOTHING"
    )

    async def handle(tx: Transaction) -> None:
        await conn.execute(handled, tx.seq, int(tx.amount * 100))

    async with TokenBank(settings) as bank:
        await bank.events.consume("kill-test", handle, batch=500, poll_interval=0.05)


if __name__ == "__main__":
    asyncio.run(main())
