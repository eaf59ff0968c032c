"""The Redis side of the sync: the consumer group on the ledger stream, its backlog and lag, drain waits.

Stream ids are ``<ms>-<n>`` with the Redis server's clock, so the age of the oldest entry not yet in PostgreSQL
is read straight off its id (no clock of this process involved).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tokenbank.storage.redis import layout
from tokenbank.storage.redis.errors import translated
from tokenbank.storage.redis.keys import TokenKeys

GROUP = "tokenbank-sync"
"""The consumer group every sync worker of a token reads through (one group: each entry goes to one worker)."""

_COUNT_CAP = 100_000
CONSUMER_IDLE_MS = 3_600_000
"""A consumer with nothing pending that has not read for an hour belongs to a process that is gone."""


def id_ms(stream_id: str) -> int:
    return int(stream_id.split("-", 1)[0])


def id_tuple(stream_id: str) -> tuple[int, int]:
    ms, _, n = stream_id.partition("-")
    return int(ms), int(n or 0)


@dataclass(frozen=True, slots=True)
class Backlog:
    """What the group has not yet brought into PostgreSQL, as Redis sees it."""

    undelivered: int
    """Entries no worker has read yet (XINFO GROUPS ``lag``; counted when Redis cannot tell)."""
    pending: int
    """Entries read by a worker but not acknowledged (in flight, or held by a dead worker)."""
    oldest_ms: int | None
    """Server time (ms) of the oldest entry not acknowledged, None when there is none."""
    now_ms: int
    last_id: str
    """The stream's last generated id: what "drained" is measured against."""
    group_exists: bool = True

    @property
    def entries(self) -> int:
        return self.undelivered + self.pending

    @property
    def lag_seconds(self) -> float:
        """How old the oldest entry not yet in PostgreSQL is (0 when drained)."""
        if self.oldest_ms is None:
            return 0.0
        return max(0.0, (self.now_ms - self.oldest_ms) / 1000)


async def ensure_group(client: Redis, keys: TokenKeys, start_id: str = "0") -> bool:
    """Create the group at ``start_id`` (and the stream if missing). False if it existed (left where it is)."""
    try:
        async with translated():
            await client.xgroup_create(keys.stream, GROUP, id=start_id, mkstream=True)
        return True
    except Exception as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise


async def position_group(client: Redis, keys: TokenKeys, start_id: str) -> None:
    """Create the group at ``start_id`` or move it there (used once, by the redis -> hybrid backfill)."""
    if not await ensure_group(client, keys, start_id):
        async with translated():
            await client.xgroup_setid(keys.stream, GROUP, start_id)


async def _group_info(client: Redis, keys: TokenKeys) -> dict[str, Any] | None:
    try:
        groups = await client.xinfo_groups(keys.stream)
    except ResponseError:  # no such key: nothing was ever written
        return None
    for group in groups:
        if group.get("name") == GROUP:
            return dict(group)
    return None


async def read_backlog(client: Redis, keys: TokenKeys) -> Backlog:
    """The backlog of ``keys``' stream right now. Raises StorageUnavailableError when Redis does not answer."""
    async with translated():
        seconds, micros = await client.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        try:
            stream = await client.xinfo_stream(keys.stream)
        except ResponseError:
            return Backlog(0, 0, None, now_ms, "0-0", group_exists=False)
        last_id = str(stream["last-generated-id"])
        group = await _group_info(client, keys)
        if group is None:
            first = stream.get("first-entry")
            first_ms = id_ms(str(first[0])) if first else None
            return Backlog(int(stream["length"]), 0, first_ms, now_ms, last_id, group_exists=False)
        delivered = str(group["last-delivered-id"])
        undelivered = group.get("lag")
        after = await client.xrange(keys.stream, min="(" + delivered, count=1)
        if undelivered is None:  # Redis cannot tell after deletions: count (bounded)
            rest = await client.xrange(keys.stream, min="(" + delivered, count=_COUNT_CAP) if after else None
            undelivered = len(rest or ())
        pending = int(group.get("pending") or 0)
        oldest: int | None = None
        if pending:
            summary = await client.xpending(keys.stream, GROUP)
            if summary.get("min"):
                oldest = id_ms(str(summary["min"]))
        if oldest is None and after:
            oldest = id_ms(str(after[0][0]))
        return Backlog(int(undelivered), pending, oldest, now_ms, last_id)


async def drained_through(client: Redis, keys: TokenKeys, target: str) -> bool:
    """True when every stream entry up to ``target`` is acknowledged (so it is in PostgreSQL)."""
    if target in ("0-0", ""):
        return True
    async with translated():
        group = await _group_info(client, keys)
        if group is None:
            return False
        if id_tuple(str(group["last-delivered-id"])) < id_tuple(target):
            return False
        if int(group.get("pending") or 0) == 0:
            return True
        summary = await client.xpending(keys.stream, GROUP)
    low = summary.get("min")
    return low is None or id_tuple(str(low)) > id_tuple(target)


async def last_id(client: Redis, keys: TokenKeys) -> str:
    """The stream's last generated id ("0-0" when there is no stream)."""
    async with translated():
        try:
            return str((await client.xinfo_stream(keys.stream))["last-generated-id"])
        except ResponseError:
            return "0-0"


async def wait_drained(client: Redis, keys: TokenKeys, within: float, *, target: str | None = None) -> bool:
    """Wait (at most ``within`` seconds) until everything written before the call, or up to ``target``, is in
    PostgreSQL. Returns whether it got there. Raises StorageUnavailableError when Redis does not answer."""
    target = target if target is not None else await last_id(client, keys)
    deadline = time.monotonic() + within
    delay = 0.005
    while True:
        if await drained_through(client, keys, target):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.1)


async def fence_seq(client: Redis, keys: TokenKeys, floor: int) -> int | None:
    """Raise the token's seq counter to at least ``floor`` (PostgreSQL's highest seq). Returns the old value if
    it had to be raised: Redis then lost acknowledged writes, and new ones must not reuse their seqs."""
    return await fence_key(client, keys.seq, floor)


async def fence_key(client: Redis, key: str, floor: int) -> int | None:
    """Raise the integer counter at ``key`` to at least ``floor``; the old value if it was raised, else None."""
    async with translated():
        return await layout.raise_counter(client, key, floor)


async def trim_acknowledged(client: Redis, keys: TokenKeys) -> None:
    """Drop stream entries every group has acknowledged: below both the oldest pending entry and the last
    delivered one. Both only move forward, so reading them non-atomically never trims an unacknowledged entry."""
    async with translated():
        try:
            groups = await client.xinfo_groups(keys.stream)
        except ResponseError:
            return
        floor: tuple[int, int] | None = None
        for group in groups:
            bound = id_tuple(str(group["last-delivered-id"]))
            if int(group.get("pending") or 0):
                summary = await client.xpending(keys.stream, str(group["name"]))
                if summary.get("min"):
                    bound = min(bound, id_tuple(str(summary["min"])))
            floor = bound if floor is None else min(floor, bound)
        if floor is not None and floor > (0, 0):
            await client.xtrim(keys.stream, minid=f"{floor[0]}-{floor[1]}", approximate=True)


async def forget_idle_consumers(client: Redis, keys: TokenKeys, *, keep: str, idle_ms: int = CONSUMER_IDLE_MS) -> int:
    """Remove consumers of processes long gone (nothing pending, idle for ``idle_ms``): every app process
    joins the group under a name of its own, and a crashed one never leaves it."""
    removed = 0
    async with translated():
        try:
            consumers = await client.xinfo_consumers(keys.stream, GROUP)
        except ResponseError:
            return 0
        for consumer in consumers:
            name = str(consumer["name"])
            if name != keep and not int(consumer.get("pending") or 0) and int(consumer.get("idle") or 0) > idle_ms:
                removed += int(await client.xgroup_delconsumer(keys.stream, GROUP, name) == 0)
    return removed
