"""A write script call that returns only once replicas hold it (``TOKEN_REDIS_WAIT_REPLICAS``).

Redis replicates asynchronously: a master that dies right after answering a write may take it with it, and the
replica promoted in its place never had it. ``WAIT n ms`` after the write, on the same connection, blocks until
``n`` replicas acknowledged everything that connection wrote (or the time is up). The script call and the WAIT
leave together as one pipeline (one round trip; on a cluster both go to the master serving the token's slot).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from tokenbank.errors import StorageUnavailableError
from tokenbank.storage.redis.connect import is_cluster

WAIT_MS = 100
"""How long a write call waits for its replicas before giving up (milliseconds)."""


async def call_and_wait(
    client: Redis, script: AsyncScript, keys: list[str], args: Sequence[str | int], replicas: int
) -> Any:
    """Run ``script`` (EVALSHA, loaded on NOSCRIPT) and WAIT for ``replicas``; the script's reply. Raises
    StorageUnavailableError when fewer replicas acknowledged within :data:`WAIT_MS`: the write is then applied on
    the master but may be lost in a failover (sending it again is safe: a write script recognises an op it
    already applied)."""
    wait_target: dict[str, Any] = {}
    if is_cluster(client):
        cluster = cast(RedisCluster, client)
        await cluster.initialize()  # the first call, or a refresh asked for after an error; else returns at once
        wait_target["target_nodes"] = cluster.get_node_from_key(keys[0])
    reply, acknowledged = await _send(client, script, keys, args, [replicas, WAIT_MS], wait_target)
    if isinstance(reply, NoScriptError):  # a new master (failover) or a flushed script cache
        script.sha = await client.script_load(script.script)
        reply, acknowledged = await _send(client, script, keys, args, [replicas, WAIT_MS], wait_target)
    for outcome in (reply, acknowledged):
        if isinstance(outcome, BaseException):
            raise outcome
    if int(acknowledged) < replicas:
        raise StorageUnavailableError(
            f"the write reached {acknowledged} of {replicas} Redis replicas within {WAIT_MS} ms "
            "(TOKEN_REDIS_WAIT_REPLICAS): it is applied on the master but could be lost in a failover; "
            "retry it (a resent write is recognised, not applied twice)"
        )
    return reply


async def _send(
    client: Redis,
    script: AsyncScript,
    keys: list[str],
    args: Sequence[str | int],
    wait: list[int],
    wait_target: dict[str, Any],
) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    pipe.evalsha(script.sha, len(keys), *keys, *args)
    pipe.execute_command("WAIT", *wait, **wait_target)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    return replies
