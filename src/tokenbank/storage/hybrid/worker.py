"""The sync worker: the token's Redis ledger stream into PostgreSQL, exactly once in effect.

Delivery is at least once: an entry is acknowledged (XACK) only after the PostgreSQL transaction holding it
committed, so a crash anywhere leaves it pending, to be read again by this consumer (``XREADGROUP 0`` at
start) or claimed by another one (``XAUTOCLAIM`` after ``claim_idle_ms``). Application is idempotent: one
``tb_replicate`` call per batch inserts by transaction id and applies balance changes only for rows it
inserted. At most once + at least once = exactly once; docs/hybrid.md has the full argument.

One worker per token is active at a time (a lease in Redis), so batches commit in stream order; correctness
does not depend on the lease, only efficiency: two workers racing still apply every entry once.

Behind on a backlog (the last read filled a whole batch), the worker reads the next batch while PostgreSQL
writes the current one, so Redis reads and PostgreSQL writes overlap. That changes nothing above: batches still
commit one after the other in stream order, each acknowledged after its commit; an entry read ahead is pending
for this consumer like any other, so after a crash or a failed write it is read again (``XREADGROUP 0``).
Caught up, it reads only after the commit, so an entry waits for at most the batch in flight before its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from tokenbank.errors import StorageError, TokenBankError
from tokenbank.settings import Settings
from tokenbank.storage import _translate
from tokenbank.storage.base import TOKEN_SETTINGS
from tokenbank.storage.hybrid import stream
from tokenbank.storage.hybrid.replicate import AuditItem, Entry, Replicator, batch_json, max_seq, sync_state
from tokenbank.storage.hybrid.status import SyncOptions, SyncStatus, default_consumer
from tokenbank.storage.hybrid.stream import GROUP
from tokenbank.storage.redis import connect, layout
from tokenbank.storage.redis.backend import RedisStorage
from tokenbank.storage.redis.codec import from_us
from tokenbank.storage.redis.errors import translated
from tokenbank.storage.sql.backend import SqlStorage

logger = logging.getLogger("tokenbank")

_CHECK_VIOLATION = "23514"
_TRIM_EVERY = 5.0


@dataclass
class _Batch:
    entries: list[Entry]
    payload: str
    """The entries as tb_replicate reads them (one JSON array)."""
    audit: list[AuditItem]
    token_fields: dict[str, str | None] | None
    check_failures: int = 0


def make_sync_client(settings: Settings, options: SyncOptions) -> Redis:
    """A small pool of the worker's own, so a blocking XREADGROUP never holds one of the application's
    connections; its read timeout outlasts the block. Raises ConfigurationError for a malformed REDIS_URL."""
    return connect.make_client(
        settings.redis_url, pool_size=4, pool_wait=10, socket_timeout=options.block_ms / 1000 + 5, connect_timeout=2
    )


class SyncWorker:
    """Moves one token's ledger stream into PostgreSQL. ``run()`` loops until ``stop`` is set (or it is
    cancelled: cancelling is safe at any point, by the same argument as a crash)."""

    def __init__(
        self, redis: RedisStorage, sql: SqlStorage, options: SyncOptions | None = None, *, client: Redis | None = None
    ) -> None:
        self.options = options or SyncOptions()
        self.keys = redis.keys
        self.sql = sql
        self.replicator = Replicator(sql)
        self.consumer = self.options.consumer or default_consumer()
        self.client = client if client is not None else make_sync_client(redis.settings, self.options)
        self._own_client = client is None
        self.status = SyncStatus(self.consumer)
        self._prepared = False
        self._own_pending = True
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._next_status = 0.0
        self._next_trim = 0.0
        self._audit_synced = 0
        self._run_id: str | None = None
        self._inflight: _Batch | None = None
        self._ahead: _Batch | None = None
        """Read while the batch before it was being written; the next one in flight."""
        self.waiting = False
        """True while blocked waiting for new entries: nothing in flight, so cancelling now loses nothing."""

    # lifecycle ---------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Sync until ``stop`` is set. Errors (Redis or PostgreSQL down, ...) are logged and retried with a
        bounded backoff, never raised: the worker outlives outages and picks up where it was."""
        stop = stop or asyncio.Event()
        pause = _Backoff(max_seconds=min(2.0, self.options.lease_ms / 3000))
        try:
            while not stop.is_set():
                try:
                    if await self.turn() is None:
                        await _sleep_unless(stop, self.standby_pause)
                        continue
                    pause.reset()
                except (TokenBankError, OSError):  # recorded by turn()
                    await _sleep_unless(stop, pause.next())
                except Exception as exc:  # a bug must not kill the loop silently: log it and carry on
                    logger.exception("sync worker: unexpected error", extra={"operation": "sync"})
                    self._failed(exc)
                    await _sleep_unless(stop, pause.next())
        finally:
            await self.release()

    @property
    def standby_pause(self) -> float:
        """How long a standby waits before asking for the lease again."""
        return min(1.0, self.options.lease_ms / 3000)

    async def turn(self) -> int | None:
        """Take or renew the lease, then one :meth:`step`: the entries handled, or None when another consumer
        holds the lease. Raises what :meth:`step` raises, after recording it in the status."""
        try:
            if not await self._hold_lease():
                self.status.role = "standby"
                self.status.backlog = await stream.read_backlog(self.client, self.keys)
                return None
            self.status.role = "active"
            if not self._prepared:
                await self.prepare()
            return await self.step()
        except (TokenBankError, OSError) as exc:
            self._failed(exc)
            with contextlib.suppress(TokenBankError, OSError):  # keep the figures fresh during an outage
                self.status.backlog = await stream.read_backlog(self.client, self.keys)
            raise

    async def release(self) -> None:
        """Give the lease back (best effort), so a standby takes over at once."""
        self.status.role = "stopped"
        with contextlib.suppress(Exception):
            await layout.release_lease(self.client, self.keys, self.consumer)

    async def finish(self, within: float = 2.0) -> None:
        """After ``run()`` ended: write what this consumer still holds (read but not acknowledged) and leave the
        group, so a clean stop leaves nothing for others to claim. Best effort within ``within`` seconds;
        anything left is claimed by the next worker after ``claim_idle_ms``."""
        with contextlib.suppress(TokenBankError, OSError, TimeoutError):
            async with asyncio.timeout(within):
                if self._inflight is not None:
                    await self.step(read_ahead=False)
                self._ahead = None  # read, not written: pending for us, so the reads below take it again
                self._own_pending = True
                while self._own_pending and await self._finish_own():
                    pass
                async with translated():
                    await self.client.xgroup_delconsumer(self.keys.stream, GROUP, self.consumer)

    async def _finish_own(self) -> int:
        own = await self._parse(await self._read({self.keys.stream: "0"}, block=None))
        if not own:
            return 0
        self._inflight = _Batch(own, await self._payloads(own), [], None)
        return await self.step(read_ahead=False)

    async def close(self) -> None:
        await self.replicator.close()
        if self._own_client:
            await connect.close_client(self.client)

    def _failed(self, exc: BaseException) -> None:
        message = exc.message if isinstance(exc, TokenBankError) else f"{type(exc).__name__}: {exc}"
        if message != self.status.last_error:
            logger.warning("sync worker: %s (retrying)", message, extra={"operation": "sync"})
        self.status.errors += 1
        self.status.last_error = message
        self._prepared = False
        if self._inflight is not None and _sqlstate(exc) == _CHECK_VIOLATION:
            self._inflight.check_failures += 1

    async def _hold_lease(self) -> bool:
        async with translated():
            return await layout.take_lease(self.client, self.keys, self.consumer, self.options.lease_ms)

    async def prepare(self) -> None:
        """Make sure the group exists, fence Redis's counters above what PostgreSQL has (after Redis lost data,
        new writes must not reuse seqs or audit ids), and re-read our own pending entries first."""
        await stream.ensure_group(self.client, self.keys)
        floor = await max_seq(self.sql)
        if floor and (old := await stream.fence_seq(self.client, self.keys, floor)) is not None:
            logger.error(
                "Redis lost acknowledged writes: its seq was %s but PostgreSQL holds seq %s; seq raised. "
                "Run `tokenbank reconcile` to see what is missing from Redis.", old, floor,
                extra={"operation": "sync.fence"},
            )  # fmt: skip
        state = await sync_state(self.sql)
        self._audit_synced = int(state["audit_synced"]) if state else 0
        if self._audit_synced:
            await stream.fence_key(self.client, self.keys.auditseq, self._audit_synced)
        async with translated():
            self._run_id = await connect.server_run_id(self.client, self.keys.stream)
        self._own_pending = True
        self._claim_cursor = "0-0"
        self._prepared = True

    # one step ----------------------------------------------------------------------------------------------
    async def step(self, *, read_ahead: bool = True) -> int:
        """Read one batch (or retry the one in flight), write it to PostgreSQL, acknowledge it. Returns the
        number of stream entries handled. Raises StorageError / StorageUnavailableError (batch kept).
        ``read_ahead``: when behind (the batch is full), read the next batch during the write (see above)."""
        await self._maintain()
        if self._inflight is None:
            self._inflight, self._ahead = self._ahead or await self._read_batch(), None
            if self._inflight is None:
                return 0
        batch = self._inflight
        strict = batch.check_failures < self.options.strict_attempts
        ahead = asyncio.ensure_future(self._read_ahead(batch)) if read_ahead and self._may_read_ahead(batch) else None
        try:
            result = await self.replicator.write(batch.payload, batch.audit, batch.token_fields, strict=strict)
        except BaseException:
            if ahead is not None:
                self._drop(ahead)
            raise
        self._inflight = None
        if batch.audit:
            self._audit_synced = max(self._audit_synced, batch.audit[-1].rid)
        self._record(batch, result.inserted, len(result.conflicts))
        if result.conflicts:
            logger.error(
                "sync: %d entries conflict with PostgreSQL (Redis lost data?) and were quarantined in "
                "tb_sync_conflicts: %s", len(result.conflicts), ", ".join(result.conflicts[:10]),
                extra={"operation": "sync.conflict"},
            )  # fmt: skip
        if ahead is not None:
            self._ahead = await self._settle(ahead)
        await self.ack([entry.stream_id for entry in batch.entries])
        return len(batch.entries)

    def _may_read_ahead(self, batch: _Batch) -> bool:
        """Behind (a full batch), and the next read would be a plain one: not our own pending entries (read with
        ``0``, they would include the batch in flight), nor a claim that is due."""
        return (
            len(batch.entries) >= self.options.batch_size
            and not self._own_pending
            and time.monotonic() < self._next_claim
        )

    async def _read_ahead(self, batch: _Batch) -> _Batch | None:
        """The next batch: new entries without waiting for any, and the audit entries after ``batch``'s unless
        it carries some (then the count of those in PostgreSQL is not known before its commit)."""
        entries = await self._parse(await self._read({self.keys.stream: ">"}, block=None))
        audit, fields = await self._new_audit() if not batch.audit else ([], None)
        if not entries and not audit:
            return None
        return _Batch(entries, await self._payloads(entries), audit, fields)

    async def _settle(self, ahead: asyncio.Future[_Batch | None]) -> _Batch | None:
        """The batch read ahead; None if the read failed (whatever it took is pending for us: read it again)."""
        try:
            return await ahead
        except (TokenBankError, OSError) as exc:
            logger.info("sync: read-ahead failed (%s); reading again", exc, extra={"operation": "sync"})
            self._own_pending = True
            return None
        except BaseException:  # cancelled: the same, for whoever resumes (finish, or a restart)
            self._own_pending = True
            raise

    def _drop(self, ahead: asyncio.Future[_Batch | None]) -> None:
        """Abandon a read ahead (the write before it failed or was cancelled): whatever it read is pending for
        this consumer and is read again, in stream order, once the batch in flight is written."""
        ahead.cancel()
        ahead.add_done_callback(_retrieve)
        self._own_pending = True

    async def _read_batch(self) -> _Batch | None:
        entries = await self._next_entries()
        audit, fields = await self._new_audit()
        if not entries and not audit:
            return None
        return _Batch(entries, await self._payloads(entries), audit, fields)

    async def ack(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 1000):
            async with translated():
                await self.client.xack(self.keys.stream, GROUP, *ids[start : start + 1000])

    def _record(self, batch: _Batch, inserted: int, conflicts: int) -> None:
        status = self.status
        status.batches += 1
        status.delivered += len(batch.entries)
        status.synced += inserted
        status.conflicts += conflicts
        status.duplicates += len(batch.entries) - inserted - conflicts
        if inserted:  # redelivered batches would only report how long they sat pending
            now_us = time.time_ns() // 1000
            newest = max(entry.created_us for entry in batch.entries)
            status.lag_samples.extend((now_us - entry.created_us) / 1e6 for entry in batch.entries)
            moment = from_us(newest)
            if status.last_synced_created_at is None or moment > status.last_synced_created_at:
                status.last_synced_created_at = moment
        status.tick()

    async def _next_entries(self) -> list[Entry]:
        o, key = self.options, self.keys.stream
        if self._own_pending:  # ours from before a crash or restart: first, and in order
            own = await self._parse(await self._read({key: "0"}, block=None))
            if own:
                return own
            self._own_pending = False
        if time.monotonic() >= self._next_claim:
            async with translated():
                cursor, claimed, *_ = await self.client.xautoclaim(
                    key, GROUP, self.consumer, o.claim_idle_ms, self._claim_cursor, count=o.batch_size
                )
            self._claim_cursor = str(cursor)
            if self._claim_cursor == "0-0":
                self._next_claim = time.monotonic() + o.claim_idle_ms / 2000
            entries = await self._parse([[key, claimed]])
            if entries:
                logger.info("sync: claimed %d entries of a dead worker", len(entries), extra={"operation": "sync"})
                return entries
        return await self._parse(await self._read({key: ">"}, block=o.block_ms))

    async def _read(self, streams: dict[Any, Any], block: int | None) -> Any:
        self.waiting = block is not None
        try:
            async with translated():
                return await self.client.xreadgroup(
                    GROUP, self.consumer, streams, count=self.options.batch_size, block=block
                )
        finally:
            self.waiting = False

    async def _parse(self, reply: Any) -> list[Entry]:
        entries, gone = [], []
        for _, items in reply or ():
            for stream_id, fields in items or ():
                if fields:
                    entries.append(Entry.from_stream(str(stream_id), fields))
                else:  # deleted from the stream while pending: nothing left to sync
                    gone.append(str(stream_id))
        if gone:
            await self.ack(gone)
        return entries

    async def _payloads(self, entries: Sequence[Entry]) -> str:
        """The entries as tb_replicate reads them, with each referenced hold's JSON read from Redis."""
        hold_ids = sorted({hold_id for entry in entries if (hold_id := entry.hold_id)})
        holds: dict[str, str] = {}
        if hold_ids:
            async with translated():
                rows = await self.client.hmget(self.keys.holds, hold_ids)
            holds = {hold_id: str(row) for hold_id, row in zip(hold_ids, rows, strict=True) if row}
        return batch_json(entries, holds)

    async def _new_audit(self) -> tuple[list[AuditItem], dict[str, str | None] | None]:
        """Audit entries Redis has beyond what PostgreSQL has (with the token settings they may change)."""
        async with translated():
            top = int(await self.client.get(self.keys.auditseq) or 0)
            if top <= self._audit_synced:
                return [], None
            ids = list(range(self._audit_synced + 1, min(top, self._audit_synced + self.options.batch_size) + 1))
            rows = await self.client.hmget(self.keys.audit, ids)
            token = await self.client.hgetall(self.keys.token)
        items = []
        for rid, row in zip(ids, rows, strict=True):
            if row is not None:
                m = json.loads(row)
                items.append(AuditItem(rid, m["action"], m["details"], str(m["ts"])))
        if not items:  # lost with Redis data: nothing to copy
            self._audit_synced = ids[-1]
            return [], None
        fields = {name: _text(token.get(name)) for name in TOKEN_SETTINGS}
        return items, fields if token else None

    async def _maintain(self) -> None:
        """Now and then: refresh the backlog for health and metrics, trim acknowledged entries, and notice a
        restarted Redis (a new run id: it may have lost data, so fence again)."""
        now = time.monotonic()
        if now < self._next_status:
            return
        self._next_status = now + self.options.status_every
        self.status.backlog = await stream.read_backlog(self.client, self.keys)
        async with translated():
            run_id = await connect.server_run_id(self.client, self.keys.stream)
        if self._run_id is not None and run_id != self._run_id:
            logger.warning("sync: Redis restarted; fencing its counters again", extra={"operation": "sync"})
            await self.prepare()
        if now >= self._next_trim:
            self._next_trim = now + _TRIM_EVERY
            await stream.trim_acknowledged(self.client, self.keys)
            await stream.forget_idle_consumers(self.client, self.keys, keep=self.consumer)


class _Backoff:
    def __init__(self, max_seconds: float) -> None:
        self.max = max_seconds
        self.delay = 0.0

    def reset(self) -> None:
        self.delay = 0.0

    def next(self) -> float:
        self.delay = min(self.max, max(0.05, self.delay * 2))
        return self.delay


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Collect an abandoned read's outcome, so asyncio does not report it as never retrieved."""
    if not future.cancelled():
        future.exception()


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _sqlstate(exc: BaseException) -> str | None:
    cause = exc.__cause__ if isinstance(exc, StorageError) else exc
    return _translate.sqlstate(cause) if cause is not None else None
