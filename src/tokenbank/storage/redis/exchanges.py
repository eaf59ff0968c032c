"""Exchanges on Redis: both tokens' ops in one ``exchange.lua`` call, concurrent exchanges batched together.

Exchanges between the same two stores that are made while a call is running leave together as one script call
(natural batching, storage/batching.py), each exchange still all or nothing on its own.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tokenbank.storage.base import OpResult, WriteOp
from tokenbank.storage.batching import WriteBatcher
from tokenbank.storage.redis import replicas
from tokenbank.storage.wire import LUA

if TYPE_CHECKING:
    from tokenbank.storage.redis.backend import RedisStorage

Pair = tuple[WriteOp, WriteOp]

IN_FLIGHT = 2
"""Script calls in flight per pair of stores (Redis runs one script at a time: two keep it busy)."""
MAX_PAIRS = 128
"""Exchanges per script call, so that one call never blocks other clients for long."""


class ExchangeSender:
    """The exchanges of one store (the token whose symbol sorts first) with the stores of other tokens."""

    def __init__(self, store: RedisStorage, timeout: float) -> None:
        self._store = store
        self._timeout = timeout
        self._batchers: weakref.WeakKeyDictionary[RedisStorage, WriteBatcher[str]] = weakref.WeakKeyDictionary()

    async def apply(self, other: RedisStorage, op: WriteOp, other_op: WriteOp) -> tuple[OpResult, OpResult]:
        batcher = self._batchers.get(other)
        if batcher is None:
            batcher = WriteBatcher(
                lambda pairs, _atomic: self._send(other, pairs), _decode, max_in_flight=IN_FLIGHT, max_ops=MAX_PAIRS
            )
            self._batchers[other] = batcher
        [result] = await batcher.apply([(op, other_op)], False)
        first, second = result
        return first, second

    async def _send(self, other: RedisStorage, pairs: Sequence[Pair]) -> str:
        """One exchange.lua call, resent as the store allows (the script answers a resent op from what it wrote)."""
        store = self._store
        keys = [*store.keys.write_keys(), *other.keys.write_keys()]
        args = [
            *store.common_args, *other.common_args, LUA.ops([a for a, _ in pairs]), LUA.ops([b for _, b in pairs])
        ]  # fmt: skip
        wait = store.settings.redis_wait_replicas

        async def call() -> str:
            async with asyncio.timeout(self._timeout):
                if wait:
                    answer: str = await replicas.call_and_wait(
                        store.write_client, store.scripts.exchange, keys, args, wait
                    )
                    return answer
                return await store.scripts.exchange(keys=keys, args=args, client=store.write_client)  # type: ignore[no-any-return]

        return await store._retrying(call)


def _decode(raw: str) -> list[tuple[OpResult, OpResult]]:
    return [(LUA.result(a), LUA.result(b)) for a, b in json.loads(raw)]
