"""Balance events over Redis pub/sub: each write script call PUBLISHes its committed transactions (a JSON
array) on ``{prefix:SYM}:token:events``; every bank that subscribes receives them, whichever process wrote."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
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
    async with translated():
        await pubsub.subscribe(channel)
        for _ in range(_CONFIRM_POLLS):  # wait for the server's subscribe confirmation
            if await pubsub.get_message(timeout=_POLL_S) is not None:
                break
        else:
            await pubsub.aclose()
            raise StorageUnavailableError("Redis did not confirm the balance event subscription")

    async def pump() -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=_POLL_S)
            except (RedisError, OSError) as exc:
                # redis-py reconnects and re-subscribes on the next call; events in the gap are lost,
                # as pub/sub is at-most-once (history is the durable record).
                logger.warning("balance event feed interrupted: %s", type(exc).__name__)
                await asyncio.sleep(_RECONNECT_S)
                continue
            if message is not None and message.get("type") == "message":
                for tx in json.loads(message["data"]):  # one message per script call: its transactions
                    handler(LUA.tx(tx))

    task = asyncio.create_task(pump(), name="tokenbank-redis-events")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pubsub.aclose()

    return stop
