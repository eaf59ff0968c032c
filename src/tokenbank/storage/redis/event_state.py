"""Durable event state of a token in Redis (redis mode), under the token's hash tag, beside its ledger keys.

The feed reads the ledger stream (``feed.lua``): it keeps every transaction in seq order, up to its cap
(``TOKEN_STREAM_MAXLEN``); a reader behind that gets FeedGapError. A pass over the feed is stored with one
script (``events_record.lua``); a delivery attempt with one MULTI/EXEC. Keys, all ``{prefix:SYMBOL}:ev:...``:

- ``consumers`` hash: consumer name -> last acknowledged seq; ``lease:<name>``: a worker lease (string, PX)
- ``webhooks`` hash: endpoint id -> JSON; ``deliveries`` hash: delivery id -> JSON; ``devents`` hash:
  ``endpoint id|event id`` -> delivery id; ``dq:<endpoint>`` / ``dall:<endpoint>`` / ``dfail:<endpoint>`` sorted
  sets of delivery ids scored by event order (pending / all / dead letters); ``attempts:<delivery>`` list of JSON
- ``monitors`` hash: id -> JSON; ``mstate`` hash: ``monitor id|account`` -> zone; ``mevents`` hash: number -> JSON,
  ``meventids`` hash (event ids stored), ``meventseq`` counter
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from tokenbank.errors import FeedGapError
from tokenbank.storage.base import TxRecord
from tokenbank.storage.durable import (
    DELIVERED,
    FAILED,
    PENDING,
    AttemptRecord,
    DeliveryRecord,
    EndpointRecord,
    EventBatch,
    EventState,
    MonitorEventRecord,
    MonitorRecord,
)
from tokenbank.storage.redis import scripts
from tokenbank.storage.redis.errors import REDIS_ERRORS
from tokenbank.storage.redis.keys import TokenKeys
from tokenbank.storage.redis.scripts import Scripts
from tokenbank.storage.wire import LUA

_TIME_FIELDS = ("created_at", "next_attempt_at", "last_attempt_at", "delivered_at", "attempted_at")


def _dump(record: Any) -> str:
    data = asdict(record)
    for key in _TIME_FIELDS:
        if isinstance(data.get(key), datetime):
            data[key] = data[key].isoformat()
    if "events" in data:
        data["events"] = list(data["events"])
    return json.dumps(data, separators=(",", ":"))


def _load(cls: Any, text: str | bytes) -> Any:
    data = json.loads(text)
    for key in _TIME_FIELDS:
        if isinstance(data.get(key), str):
            data[key] = datetime.fromisoformat(data[key]).astimezone(UTC)
    if "events" in data:
        data["events"] = tuple(data["events"])
    return cls(**data)


def _score(delivery: DeliveryRecord) -> str:
    return str(delivery.seq * 64 + delivery.position)


class RedisEventState(EventState):
    """The event state of one token in Redis, on the store's client and scripts."""

    def __init__(self, client: Redis, keys: TokenKeys, scripts: Scripts) -> None:
        self._client = client
        self._keys = keys
        self._p = keys.events_prefix
        self._feed = scripts.feed
        self._record = scripts.events_record

    def _k(self, name: str) -> str:
        return self._p + name

    # the feed ---------------------------------------------------------------------------------------------
    async def feed(self, after_seq: int, limit: int) -> list[TxRecord]:
        async with REDIS_ERRORS.translated():
            reply = await self._feed(keys=[self._keys.stream, self._keys.seq], args=[str(after_seq), str(limit)])
        if int(reply[0]) == 1:
            held = int(reply[1])
            where = f"it starts at seq {held}" if held else "it holds no transaction"
            raise FeedGapError(
                f"Redis no longer holds seq {after_seq + 1} of the ledger stream ({where}; TOKEN_STREAM_MAXLEN "
                "caps it): read the rest from an export or the ledger of record, then move the cursor on"
            )
        return [LUA.tx(row if isinstance(row, str) else row.decode()) for row in reply[1:]]

    async def get_cursor(self, name: str) -> int:
        async with REDIS_ERRORS.translated():
            value = await self._client.hget(self._k("consumers"), name)
        return int(value or 0)

    async def set_cursor(self, name: str, seq: int) -> None:
        await self.record(EventBatch(cursor=name, upto_seq=seq))

    async def take_lease(self, name: str, owner: str, seconds: float) -> bool:
        async with REDIS_ERRORS.translated():
            reply = await scripts.run(
                self._client, "sync_lease", [self._k("lease:" + name)], [owner, str(max(1, int(seconds * 1000)))]
            )
        return bool(reply)

    async def release_lease(self, name: str, owner: str) -> None:
        async with REDIS_ERRORS.translated():
            await scripts.run(self._client, "sync_release", [self._k("lease:" + name)], [owner])

    # webhooks ---------------------------------------------------------------------------------------------
    async def add_endpoint(self, endpoint: EndpointRecord) -> None:
        async with REDIS_ERRORS.translated():
            await self._client.hset(self._k("webhooks"), endpoint.id, _dump(endpoint))

    async def list_endpoints(self) -> list[EndpointRecord]:
        async with REDIS_ERRORS.translated():
            found = await self._client.hgetall(self._k("webhooks"))
        return sorted((_load(EndpointRecord, text) for text in found.values()), key=lambda e: e.id)

    async def remove_endpoint(self, endpoint_id: str) -> bool:
        async with REDIS_ERRORS.translated():
            removed = await self._client.hdel(self._k("webhooks"), endpoint_id)
            await self._client.delete(self._k("dq:" + endpoint_id))
        return bool(removed)

    async def record(self, batch: EventBatch) -> None:
        pass_ = {
            "cursor": batch.cursor,
            "upto": str(batch.upto_seq),
            "deliveries": [
                {"id": d.id, "endpoint_id": d.endpoint_id, "event_id": d.event_id, "score": _score(d), "json": _dump(d)}
                for d in batch.deliveries
            ],
            "states": [{"key": f"{s.monitor_id}|{s.user_id}", "zone": s.zone} for s in batch.states],
            "events": [{"event_id": e.event_id, "json": _dump(e)} for e in batch.monitor_events],
        }
        keys = [self._k(name) for name in ("deliveries", "devents", "mstate", "mevents", "meventids", "meventseq")]
        async with REDIS_ERRORS.translated():
            await self._record(keys=[*keys, self._k("consumers")], args=[self._p, json.dumps(pass_)])

    async def queue_head(self, endpoint_id: str) -> DeliveryRecord | None:
        async with REDIS_ERRORS.translated():
            ids = await self._client.zrange(self._k("dq:" + endpoint_id), 0, 0)
            if not ids:
                return None
            text = await self._client.hget(self._k("deliveries"), str(ids[0]))
        return None if text is None else _load(DeliveryRecord, text)

    async def update_delivery(self, delivery: DeliveryRecord, attempt: AttemptRecord | None = None) -> None:
        ep, score = delivery.endpoint_id, _score(delivery)
        async with REDIS_ERRORS.translated(), self._client.pipeline(transaction=True) as pipe:
            pipe.hset(self._k("deliveries"), delivery.id, _dump(delivery))
            if delivery.status == PENDING:
                pipe.zadd(self._k("dq:" + ep), {delivery.id: score})
                pipe.zrem(self._k("dfail:" + ep), delivery.id)
            else:
                pipe.zrem(self._k("dq:" + ep), delivery.id)
                if delivery.status == FAILED:
                    pipe.zadd(self._k("dfail:" + ep), {delivery.id: score})
                elif delivery.status == DELIVERED:
                    pipe.zrem(self._k("dfail:" + ep), delivery.id)
            if attempt is not None:
                pipe.rpush(self._k("attempts:" + delivery.id), _dump(attempt))
            await pipe.execute()

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        async with REDIS_ERRORS.translated():
            text = await self._client.hget(self._k("deliveries"), delivery_id)
        return None if text is None else _load(DeliveryRecord, text)

    async def list_deliveries(self, endpoint_id: str, *, failed: bool, limit: int) -> list[DeliveryRecord]:
        index = self._k(("dfail:" if failed else "dall:") + endpoint_id)
        async with REDIS_ERRORS.translated():
            ids = await self._client.zrevrange(index, 0, limit - 1)
            texts = await self._client.hmget(self._k("deliveries"), [str(i) for i in ids]) if ids else []
        return [_load(DeliveryRecord, text) for text in texts if text is not None]

    async def attempts(self, delivery_id: str) -> list[AttemptRecord]:
        async with REDIS_ERRORS.translated():
            texts = await self._client.lrange(self._k("attempts:" + delivery_id), 0, -1)
        return [_load(AttemptRecord, text) for text in texts]

    # monitors ---------------------------------------------------------------------------------------------
    async def add_monitor(self, monitor: MonitorRecord) -> None:
        async with REDIS_ERRORS.translated():
            await self._client.hset(self._k("monitors"), monitor.id, _dump(monitor))

    async def list_monitors(self) -> list[MonitorRecord]:
        async with REDIS_ERRORS.translated():
            found = await self._client.hgetall(self._k("monitors"))
        return sorted((_load(MonitorRecord, text) for text in found.values()), key=lambda m: m.id)

    async def remove_monitor(self, monitor_id: str) -> bool:
        async with REDIS_ERRORS.translated():
            removed = await self._client.hdel(self._k("monitors"), monitor_id)
            pattern = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in monitor_id) + "|*"
            stale = [key async for key in self._client.hscan_iter(self._k("mstate"), match=pattern, no_values=True)]
            if stale:
                await self._client.hdel(self._k("mstate"), *stale)
        return bool(removed)

    async def monitor_zones(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        if not keys:
            return {}
        ordered = list(dict.fromkeys(keys))
        async with REDIS_ERRORS.translated():
            zones = await self._client.hmget(self._k("mstate"), [f"{m}|{u}" for m, u in ordered])
        return {key: _text(zone) for key, zone in zip(ordered, zones, strict=True) if zone is not None}

    async def monitor_events(self, after_id: int, limit: int) -> list[MonitorEventRecord]:
        ids = [str(n) for n in range(after_id + 1, after_id + limit + 1)]
        async with REDIS_ERRORS.translated():
            texts = await self._client.hmget(self._k("mevents"), ids)
        out = []
        for number, text in zip(ids, texts, strict=True):
            if text is None:
                break
            event = _load(MonitorEventRecord, text)
            out.append(MonitorEventRecord(int(number), *_fields_after_id(event)))
        return out


def _fields_after_id(event: MonitorEventRecord) -> tuple[Any, ...]:
    return (event.event_id, event.monitor_id, event.user_id, event.seq, event.payload, event.created_at)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
