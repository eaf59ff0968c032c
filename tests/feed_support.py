"""Helpers of the durable-events tests: waiting until the feed can see what was written."""

from __future__ import annotations

from tokenbank import TokenBank


async def settle(bank: TokenBank, within: float = 60.0) -> None:
    """Hybrid mode: the feed reads PostgreSQL, which the sync fills a moment after each write; wait until the
    sync backlog is drained. Other modes: the feed sees a write once it returned, nothing to wait for."""
    from tokenbank.storage.hybrid.backend import HybridStorage

    store = bank.storage
    if isinstance(store, HybridStorage):
        from tokenbank.storage.hybrid import stream

        assert await stream.wait_drained(store.redis.client, store.redis.keys, within), "sync backlog did not drain"
