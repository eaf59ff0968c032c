"""Balance events over Redis sharded pub/sub: each write script call SPUBLISHes its committed transactions (a JSON
array) on the shard channel ``{prefix:SYM}:token:events``; every bank that subscribes (SSUBSCRIBE) receives them,
whichever process wrote.

A shard channel, not a classic one: on a Redis Cluster a classic PUBLISH is broadcast over the cluster bus to
every node, so each master would pay for every token's events; a shard channel stays with the master serving the
token's slot and its replicas, and redis-py's cluster pub/sub moves the subscription to the new master after a
failover. On one server both kinds behave alike (Redis 7 is needed either way)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterPubSub
from redis.exceptions import RedisError

from tokenbank.errors import StorageUnavailableError
from tokenbank.storage.base import TxRecord
from tokenbank.storage.redis.errors import translated
from tokenbank.storage.wire import LUA

logger = logging.getLogger("tokenbank")
_POLL_S = 1.0
_RECONNECT_S = 0.5
_CONFIRM_POLLS = 5


async def listen(client: Redis, channel: str, handler: Callable[[TxRecord], None]) -> Callable[[], Awaitable[None]]:
    """Subscribe (confirmed before returning, so no later write is missed) and feed ``handler`` from a task."""
    pubsub = client.pubsub()
    # A cluster's pub/sub keeps one connection per node and reads shard channels with get_sharded_message.
    receive = pubsub.get_sharded_message if isinstance(pubsub, ClusterPubSub) else pubsub.get_message
    async with translated():
        await pubsub.ssubscribe(channel)
        for _ in range(_CONFIRM_POLLS):  # wait for the server's subscribe confirmation
            if await receive(timeout=_POLL_S) is not None:
                break
        else:
            await pubsub.aclose()
            raise StorageUnavailableError("Redis did not confirm the balance event subscription")

    async def pump() -> None:
        while True:
            try:
                message = await receive(timeout=_POLL_S)
            except (RedisError, OSError) as exc:
                # redis-py reconnects and re-subscribes on the next call; events in the gap are lost,
                # as pub/sub is at-most-once (history is the durable record).
                logger.warning("balance event feed interrupted: %s", type(exc).__name__)
                await asyncio.sleep(_RECONNECT_S)
                continue
            if message is not None and message.get("type") in ("message", "smessage"):
                for tx in json.loads(message["data"]):  # one message per script call: its transactions
                    handler(LUA.tx(tx))

    task = asyncio.create_task(pump(), name="tokenbank-redis-events")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pubsub.aclose()

    return stop
