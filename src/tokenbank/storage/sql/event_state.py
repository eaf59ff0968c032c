"""Durable event state in the SQL ledger (SQLite, PostgreSQL; hybrid's PostgreSQL): the feed over
``tb_transactions`` and the tables of revision 0005.

Why the PostgreSQL feed waits before it reads: seqs come from a sequence drawn inside each writer's transaction,
so seq 11 can commit before seq 10 does. A reader that saw 11 and moved its cursor past it would never see 10.
Every writer takes its locks on ``tb_accounts`` / ``tb_transactions`` before it draws a seq and keeps them until
it commits, so the feed first notes the highest committed seq ``h``, then the transactions holding such locks,
waits until those have ended, and only then reads up to ``h``: any seq at or below ``h`` that was still in flight
belonged to one of them. SQLite commits one writer at a time, in seq order, so it reads at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from tokenbank.storage.base import TxRecord
from tokenbank.storage.durable import (
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
from tokenbank.storage.sql.schema import (
    consumers,
    deliveries,
    delivery_attempts,
    leases,
    monitor_events,
    monitor_state,
    monitors,
    transactions,
    webhooks,
)
from tokenbank.storage.wire import SQL

T = TypeVar("T")
RunSync = Callable[..., Awaitable[Any]]

_IN_FLIGHT_WAIT_S = 30.0
"""How long one feed read waits for writers in flight below its horizon before it reads only what is below the
horizon it could confirm (nothing new): a transaction left open that long on the ledger's tables holds the feed."""

# Transactions (by virtual transaction id) that hold a writer's lock on the ledger tables right now.
_WRITERS = sa.text(
    "SELECT DISTINCT virtualtransaction FROM pg_locks WHERE locktype = 'relation' AND granted "
    "AND relation IN ('tb_transactions'::regclass, 'tb_accounts'::regclass) "
    "AND mode IN ('RowShareLock', 'RowExclusiveLock') AND pid <> pg_backend_pid()"
)
_STILL_RUNNING = sa.text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'virtualxid' AND virtualxid = ANY(CAST(:ids AS text[]))"
)


def _now() -> datetime:
    return datetime.now(UTC)


def _insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_*`` (SQLite and PostgreSQL spell it the same way)."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


class SqlEventState(EventState):
    """The event state of one token in a SQL database reached through ``run_sync`` (the store's transaction
    runner: ``run_sync(fn, write=...)``)."""

    def __init__(self, run_sync: RunSync, token: str) -> None:
        self._run = run_sync
        self.token = token

    # the feed ---------------------------------------------------------------------------------------------
    async def feed(self, after_seq: int, limit: int) -> list[TxRecord]:
        horizon = await self._run(self._horizon)
        if horizon is not None:
            top, writers = horizon
            if top <= after_seq:
                return []
            if writers and not await self._wait_for(writers):
                return []
        limit_to = None if horizon is None else top
        rows: list[TxRecord] = await self._run(lambda conn: self._read(conn, after_seq, limit, limit_to))
        return rows

    def _horizon(self, conn: Connection) -> tuple[int, list[str]] | None:
        if conn.dialect.name != "postgresql":
            return None
        top = conn.scalar(sa.select(sa.func.max(transactions.c.seq)).where(transactions.c.token == self.token))
        writers = [row[0] for row in conn.execute(_WRITERS)]  # after the max: see the module docstring
        return int(top or 0), writers

    async def _wait_for(self, writers: list[str]) -> bool:
        deadline = time.monotonic() + _IN_FLIGHT_WAIT_S
        delay = 0.001
        while True:
            running = await self._run(lambda conn: conn.scalar(_STILL_RUNNING, {"ids": writers}))
            if not running:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _read(self, conn: Connection, after_seq: int, limit: int, top: int | None) -> list[TxRecord]:
        stmt = sa.select(transactions).where(transactions.c.token == self.token, transactions.c.seq > after_seq)
        if top is not None:
            stmt = stmt.where(transactions.c.seq <= top)
        return [SQL.tx(row) for row in conn.execute(stmt.order_by(transactions.c.seq).limit(limit))]

    async def get_cursor(self, name: str) -> int:
        value = await self._run(
            lambda conn: conn.scalar(
                sa.select(consumers.c.seq).where(consumers.c.token == self.token, consumers.c.name == name)
            )
        )
        return int(value or 0)

    async def set_cursor(self, name: str, seq: int) -> None:
        await self._run(lambda conn: self._set_cursor(conn, name, seq), write=True)

    def _set_cursor(self, conn: Connection, name: str, seq: int) -> None:
        stmt = _insert(conn, consumers).values(token=self.token, name=name, seq=seq, updated_at=_now())
        greatest = sa.func.greatest if conn.dialect.name == "postgresql" else sa.func.max
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[consumers.c.token, consumers.c.name],
                set_={"seq": greatest(consumers.c.seq, stmt.excluded.seq), "updated_at": stmt.excluded.updated_at},
            )
        )

    async def take_lease(self, name: str, owner: str, seconds: float) -> bool:
        def work(conn: Connection) -> bool:
            now = _now()
            stmt = _insert(conn, leases).values(
                token=self.token, name=name, owner=owner, expires_at=now + _seconds(seconds)
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[leases.c.token, leases.c.name],
                    set_={"owner": stmt.excluded.owner, "expires_at": stmt.excluded.expires_at},
                    where=sa.or_(leases.c.owner == owner, leases.c.expires_at < now),
                )
            )
            holder = conn.scalar(sa.select(leases.c.owner).where(leases.c.token == self.token, leases.c.name == name))
            return bool(holder == owner)

        return bool(await self._run(work, write=True))

    async def release_lease(self, name: str, owner: str) -> None:
        await self._run(
            lambda conn: conn.execute(
                leases.delete().where(leases.c.token == self.token, leases.c.name == name, leases.c.owner == owner)
            ),
            write=True,
        )

    # webhooks ---------------------------------------------------------------------------------------------
    async def add_endpoint(self, endpoint: EndpointRecord) -> None:
        await self._run(
            lambda conn: conn.execute(
                webhooks.insert().values(
                    id=endpoint.id, token=self.token, url=endpoint.url, events=json.dumps(list(endpoint.events)),
                    secret=endpoint.secret, created_at=endpoint.created_at,
                )
            ),
            write=True,
        )  # fmt: skip

    async def list_endpoints(self) -> list[EndpointRecord]:
        def work(conn: Connection) -> list[EndpointRecord]:
            rows = conn.execute(sa.select(webhooks).where(webhooks.c.token == self.token).order_by(webhooks.c.id))
            return [
                EndpointRecord(row.id, row.url, tuple(json.loads(row.events)), row.secret, row.created_at)
                for row in rows
            ]

        result: list[EndpointRecord] = await self._run(work)
        return result

    async def remove_endpoint(self, endpoint_id: str) -> bool:
        def work(conn: Connection) -> bool:
            done = conn.execute(webhooks.delete().where(webhooks.c.token == self.token, webhooks.c.id == endpoint_id))
            return bool(done.rowcount)

        return bool(await self._run(work, write=True))

    async def record(self, batch: EventBatch) -> None:
        await self._run(lambda conn: self._record(conn, batch), write=True)

    def _record(self, conn: Connection, batch: EventBatch) -> None:
        for delivery in batch.deliveries:
            # No conflict target: a delivery's id follows from (endpoint, event), and two passes queueing one event
            # at once collide on the primary key first (PostgreSQL raises on a unique index that is not the target).
            values = _delivery_values(delivery)
            conn.execute(_insert(conn, deliveries).values(token=self.token, **values).on_conflict_do_nothing())
        for state in batch.states:
            stmt = _insert(conn, monitor_state).values(
                monitor_id=state.monitor_id, user_id=state.user_id, token=self.token, zone=state.zone, seq=state.seq
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[monitor_state.c.monitor_id, monitor_state.c.user_id],
                    set_={"zone": stmt.excluded.zone, "seq": stmt.excluded.seq},
                )
            )
        for event in batch.monitor_events:
            conn.execute(
                _insert(conn, monitor_events)
                .values(
                    token=self.token, event_id=event.event_id, monitor_id=event.monitor_id, user_id=event.user_id,
                    seq=event.seq, payload=event.payload, created_at=event.created_at,
                )
                .on_conflict_do_nothing(index_elements=[monitor_events.c.token, monitor_events.c.event_id])
            )  # fmt: skip
        self._set_cursor(conn, batch.cursor, batch.upto_seq)

    async def queue_head(self, endpoint_id: str) -> DeliveryRecord | None:
        def work(conn: Connection) -> DeliveryRecord | None:
            row = conn.execute(
                sa.select(deliveries)
                .where(
                    deliveries.c.token == self.token,
                    deliveries.c.endpoint_id == endpoint_id,
                    deliveries.c.status == PENDING,
                )
                .order_by(deliveries.c.seq, deliveries.c.position)
                .limit(1)
            ).first()
            return None if row is None else _delivery(row)

        result: DeliveryRecord | None = await self._run(work)
        return result

    async def update_delivery(self, delivery: DeliveryRecord, attempt: AttemptRecord | None = None) -> None:
        def work(conn: Connection) -> None:
            values = _delivery_values(delivery)
            del values["id"]
            conn.execute(
                deliveries.update()
                .where(deliveries.c.token == self.token, deliveries.c.id == delivery.id)
                .values(**values)
            )
            if attempt is not None:
                conn.execute(
                    delivery_attempts.insert().values(
                        delivery_id=attempt.delivery_id, attempted_at=attempt.attempted_at,
                        response_status=attempt.response_status, error=attempt.error,
                        duration_ms=attempt.duration_ms,
                    )
                )  # fmt: skip

        await self._run(work, write=True)

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        def work(conn: Connection) -> DeliveryRecord | None:
            row = conn.execute(
                sa.select(deliveries).where(deliveries.c.token == self.token, deliveries.c.id == delivery_id)
            ).first()
            return None if row is None else _delivery(row)

        result: DeliveryRecord | None = await self._run(work)
        return result

    async def list_deliveries(self, endpoint_id: str, *, failed: bool, limit: int) -> list[DeliveryRecord]:
        def work(conn: Connection) -> list[DeliveryRecord]:
            stmt = sa.select(deliveries).where(
                deliveries.c.token == self.token, deliveries.c.endpoint_id == endpoint_id
            )
            if failed:
                stmt = stmt.where(deliveries.c.status == FAILED)
            stmt = stmt.order_by(deliveries.c.seq.desc(), deliveries.c.position.desc()).limit(limit)
            return [_delivery(row) for row in conn.execute(stmt)]

        result: list[DeliveryRecord] = await self._run(work)
        return result

    async def attempts(self, delivery_id: str) -> list[AttemptRecord]:
        def work(conn: Connection) -> list[AttemptRecord]:
            rows = conn.execute(
                sa.select(delivery_attempts)
                .where(delivery_attempts.c.delivery_id == delivery_id)
                .order_by(delivery_attempts.c.id)
            )
            return [
                AttemptRecord(row.delivery_id, row.attempted_at, row.response_status, row.error, row.duration_ms)
                for row in rows
            ]

        result: list[AttemptRecord] = await self._run(work)
        return result

    # monitors ---------------------------------------------------------------------------------------------
    async def add_monitor(self, monitor: MonitorRecord) -> None:
        await self._run(
            lambda conn: conn.execute(
                monitors.insert().values(
                    id=monitor.id, token=self.token, user_id=monitor.user_id, below=monitor.below,
                    above=monitor.above, created_at=monitor.created_at,
                )
            ),
            write=True,
        )  # fmt: skip

    async def list_monitors(self) -> list[MonitorRecord]:
        def work(conn: Connection) -> list[MonitorRecord]:
            rows = conn.execute(sa.select(monitors).where(monitors.c.token == self.token).order_by(monitors.c.id))
            return [
                MonitorRecord(row.id, row.user_id, _opt_int(row.below), _opt_int(row.above), row.created_at)
                for row in rows
            ]

        result: list[MonitorRecord] = await self._run(work)
        return result

    async def remove_monitor(self, monitor_id: str) -> bool:
        def work(conn: Connection) -> bool:
            done = conn.execute(monitors.delete().where(monitors.c.token == self.token, monitors.c.id == monitor_id))
            conn.execute(monitor_state.delete().where(monitor_state.c.monitor_id == monitor_id))
            return bool(done.rowcount)

        return bool(await self._run(work, write=True))

    async def monitor_zones(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        ids = sorted({monitor_id for monitor_id, _ in keys})
        wanted = set(keys)

        def work(conn: Connection) -> dict[tuple[str, str], str]:
            found: dict[tuple[str, str], str] = {}
            users = sorted({user for _, user in keys})
            for start in range(0, len(users), 500):
                rows = conn.execute(
                    sa.select(monitor_state.c.monitor_id, monitor_state.c.user_id, monitor_state.c.zone).where(
                        monitor_state.c.monitor_id.in_(ids), monitor_state.c.user_id.in_(users[start : start + 500])
                    )
                )
                found.update({(r.monitor_id, r.user_id): r.zone for r in rows if (r.monitor_id, r.user_id) in wanted})
            return found

        if not keys:
            return {}
        result: dict[tuple[str, str], str] = await self._run(work)
        return result

    async def monitor_events(self, after_id: int, limit: int) -> list[MonitorEventRecord]:
        def work(conn: Connection) -> list[MonitorEventRecord]:
            rows = conn.execute(
                sa.select(monitor_events)
                .where(monitor_events.c.token == self.token, monitor_events.c.id > after_id)
                .order_by(monitor_events.c.id)
                .limit(limit)
            )
            return [
                MonitorEventRecord(r.id, r.event_id, r.monitor_id, r.user_id, int(r.seq), r.payload, r.created_at)
                for r in rows
            ]

        result: list[MonitorEventRecord] = await self._run(work)
        return result


def _seconds(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _delivery_values(d: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": d.id, "endpoint_id": d.endpoint_id, "event_id": d.event_id, "event_type": d.event_type, "seq": d.seq,
        "position": d.position, "payload": d.payload, "status": d.status, "attempts": d.attempts,
        "created_at": d.created_at, "next_attempt_at": d.next_attempt_at, "last_attempt_at": d.last_attempt_at,
        "delivered_at": d.delivered_at, "response_status": d.response_status, "last_error": d.last_error,
    }  # fmt: skip


def _delivery(row: Any) -> DeliveryRecord:
    return DeliveryRecord(
        id=row.id, endpoint_id=row.endpoint_id, event_id=row.event_id, event_type=row.event_type, seq=int(row.seq),
        position=row.position, payload=row.payload, status=row.status, attempts=row.attempts,
        created_at=row.created_at, next_attempt_at=row.next_attempt_at, last_attempt_at=row.last_attempt_at,
        delivered_at=row.delivered_at, response_status=row.response_status, last_error=row.last_error,
    )  # fmt: skip
