"""The event pass and webhook delivery: what ``tokenbank worker`` runs for a token.

The event pass reads the feed after its own cursor (``tokenbank.events``), evaluates balance monitors, and queues
one delivery per (endpoint, event) for the endpoints subscribed to the event, storing all of it together with the
cursor, so an event is queued exactly once however often the pass is interrupted. The sender then POSTs, per
endpoint, the FIRST pending delivery in event order, and the next only after it was acknowledged (2xx) or
dead-lettered: an endpoint sees its events in seq order, and a failing one holds back that endpoint's later events
(never another endpoint's) until it succeeds or its retry window (``TOKEN_WEBHOOK_RETRY_HOURS``) ends. Retries wait
an exponentially growing delay with jitter.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from tokenbank import convert
from tokenbank.clock import read_clock
from tokenbank.errors import ConfigurationError
from tokenbank.services import lot_warnings, signing
from tokenbank.services import monitors as monitoring
from tokenbank.services.event_payloads import (
    BALANCE_THRESHOLD,
    LOT_EXPIRING,
    TRANSACTION_CREATED,
    body,
    transaction_data,
)
from tokenbank.storage.capabilities import LotStore
from tokenbank.storage.durable import (
    DELIVERED,
    FAILED,
    PENDING,
    AttemptRecord,
    DeliveryRecord,
    EndpointRecord,
    EventBatch,
    EventState,
)
from tokenbank.storage.wire import from_us, to_us

if TYPE_CHECKING:
    import httpx

    from tokenbank.ledger import Ledger
    from tokenbank.storage.base import LotRecord, TxRecord

logger = logging.getLogger("tokenbank")

EVENTS_CURSOR = "tokenbank.events"
"""The event pass's consumer name."""
_NAMESPACE = uuid.UUID("6f1d0c2a-53a4-4f51-9b0e-2f3c7c1f9e10")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry ``n`` (1-based): ``base * 2**(n-1)`` capped at ``cap`` seconds, times a random factor in
    [0.5, 1] (jitter: endpoints that failed together do not retry together)."""

    base: float = 5.0
    cap: float = 3600.0

    def delay(self, attempt: int) -> float:
        return float(min(self.cap, self.base * 2 ** min(attempt - 1, 30)) * random.uniform(0.5, 1.0))


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one :meth:`Dispatcher.run_once` did."""

    transactions: int
    """Transactions the event pass read."""
    queued: int
    """Deliveries it queued (``lot.expiring`` warnings included)."""
    delivered: int
    failed_attempts: int
    dead_lettered: int
    lots_warned: int = 0
    """Lots the time-driven step found expiring within ``TOKEN_LOT_EXPIRY_WARNING``."""


def _require_httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise ConfigurationError("webhook delivery needs httpx: pip install 'tokenbank[webhooks]'") from None
    return httpx


class Dispatcher:
    """Event pass and sender for one token. Use as ``async with Dispatcher(...) as d: await d.run_once()``."""

    def __init__(
        self,
        ledger: Ledger,
        state: EventState,
        *,
        retry_hours: float | None = None,
        backoff: Backoff | None = None,
        timeout: float = 10.0,
        batch: int = 500,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._ledger = ledger
        self._state = state
        self._window = timedelta(hours=ledger.settings.webhook_retry_hours if retry_hours is None else retry_hours)
        self._backoff = backoff or Backoff()
        self._timeout = timeout
        self._batch = batch
        self._client = client
        self._own_client = client is None

    async def __aenter__(self) -> Self:
        if self._client is None:
            self._client = _require_httpx().AsyncClient(timeout=self._timeout, follow_redirects=False)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    # the event pass ---------------------------------------------------------------------------------------
    async def pump(self, at: datetime | None = None) -> tuple[int, int]:
        """One batch of the feed after the pass's cursor: monitors evaluated, deliveries queued (a lot granted
        inside its expiry warning: its ``lot.expiring`` too), cursor moved (all stored at once). ``at``: the time
        lots are judged at (the bank's clock by default). Returns (transactions read, deliveries queued)."""
        after = await self._state.get_cursor(EVENTS_CURSOR)
        txs = await self._state.feed(after, self._batch)
        if not txs:
            return 0, 0
        endpoints = await self._state.list_endpoints()
        watchers = await self._state.list_monitors()
        zones = await self._state.monitor_zones(monitoring.touched(watchers, txs)) if watchers else {}
        crossing = monitoring.evaluate(watchers, txs, zones, self._ledger.decimals)
        now = datetime.now(UTC)
        warned = await self._granted_inside_warning(txs, endpoints, at or read_clock(self._ledger.clock))
        deliveries: list[DeliveryRecord] = []
        thresholds: dict[int, list[tuple[str, str]]] = {}
        for tx, record, text in crossing.events:
            thresholds.setdefault(tx.seq, []).append((record.event_id, text))
        for tx in txs:
            receivers = [endpoint for endpoint in endpoints if tx.timestamp >= endpoint.created_at]
            if not receivers:  # nobody to send to: skip building the bodies (most of a pass's cost per entry)
                continue
            data = transaction_data(convert.transaction(tx, self._ledger.decimals))
            events = [(f"evt_{tx.id}", TRANSACTION_CREATED, body(TRANSACTION_CREATED, tx.timestamp, data))]
            events += [(event_id, BALANCE_THRESHOLD, text) for event_id, text in thresholds.get(tx.seq, [])]
            if tx.id in warned:
                lot = warned[tx.id]
                text = body(LOT_EXPIRING, now, lot_warnings.data(lot, self._ledger.decimals))
                events.append((lot_warnings.event_id(lot.id), LOT_EXPIRING, text))
            for endpoint in receivers:
                for position, (event_id, event_type, text) in enumerate(events):
                    if event_type in endpoint.events:
                        deliveries.append(_delivery(endpoint, event_id, event_type, tx.seq, position, text, now))
        await self._state.record(
            EventBatch(
                EVENTS_CURSOR, txs[-1].seq, deliveries, crossing.states, [record for _, record, _ in crossing.events]
            )
        )
        return len(txs), len(deliveries)

    async def _granted_inside_warning(
        self, txs: list[TxRecord], endpoints: list[EndpointRecord], now: datetime
    ) -> dict[str, LotRecord]:
        """The lots granted in ``txs`` with less than the warning left, still open at ``now`` (lot id -> lot), when
        an endpoint wants ``lot.expiring``."""
        store = self._ledger.storage
        warning = self._ledger.settings.lot_expiry_warning
        if warning <= 0 or not isinstance(store, LotStore) or not any(LOT_EXPIRING in e.events for e in endpoints):
            return {}
        grants = lot_warnings.warned_grants(txs, timedelta(seconds=warning) + lot_warnings.GRANT_MARGIN, now)
        return await lot_warnings.open_lots(store, grants, now) if grants else {}

    async def warn_expiring(self, now: datetime) -> tuple[int, int, bool]:
        """One batch of the time-driven ``lot.expiring`` step: the open lots expiring after the step's cursor and
        at most ``TOKEN_LOT_EXPIRY_WARNING`` after ``now``, one delivery per subscribed endpoint, stored with the
        cursor at once. Returns (lots found, deliveries queued, whether the step reached ``now`` + warning)."""
        store = self._ledger.storage
        warning = self._ledger.settings.lot_expiry_warning
        if warning <= 0 or not isinstance(store, LotStore):
            return 0, 0, True
        until = now + timedelta(seconds=warning)
        cursor = await self._state.get_cursor(lot_warnings.LOTS_CURSOR)
        # Never before now: a token's first step, or one after the worker was down, warns no lot already expired.
        after = max(from_us(cursor), now)
        if after >= until:
            return 0, 0, True
        endpoints = [e for e in await self._state.list_endpoints() if LOT_EXPIRING in e.events]
        lots, reached = await lot_warnings.window(store, after, until, self._batch) if endpoints else ([], until)
        seq = await self._state.get_cursor(EVENTS_CURSOR)  # queued after the events of the feed read so far
        queued_at = datetime.now(UTC)
        deliveries = [
            _delivery(
                endpoint, lot_warnings.event_id(lot.id), LOT_EXPIRING, seq, lot_warnings.LOT_POSITION,
                body(LOT_EXPIRING, now, lot_warnings.data(lot, self._ledger.decimals)), queued_at,
            )
            for lot in lots
            for endpoint in endpoints
        ]  # fmt: skip
        await self._state.record(EventBatch(lot_warnings.LOTS_CURSOR, to_us(reached), deliveries))
        return len(lots), len(deliveries), reached >= until

    # sending ----------------------------------------------------------------------------------------------
    async def send_due(self, now: datetime | None = None, *, per_endpoint: int = 100) -> tuple[int, int, int]:
        """Send each endpoint's due deliveries in order, stopping at its first failure. ``now``: the time retry
        schedules are compared with (the current time by default). Returns (delivered, failed attempts,
        dead-lettered)."""
        delivered = failed = dead = 0
        for endpoint in await self._state.list_endpoints():
            for _ in range(per_endpoint):
                head = await self._state.queue_head(endpoint.id)
                moment = now or datetime.now(UTC)
                if head is None or (head.next_attempt_at is not None and head.next_attempt_at > moment):
                    break
                outcome = await self._attempt(endpoint, head, moment)
                if outcome == DELIVERED:
                    delivered += 1
                    continue
                failed += 1
                if outcome == FAILED:
                    dead += 1
                    continue  # dead-lettered: the endpoint's next event may go
                break
        return delivered, failed, dead

    async def _attempt(self, endpoint: EndpointRecord, delivery: DeliveryRecord, now: datetime) -> str:
        if self._client is None:
            raise RuntimeError("Dispatcher used outside 'async with'")
        content = delivery.payload.encode()
        headers = signing.headers(endpoint.secret, delivery.event_id, int(time.time()), content)
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            response = await self._client.post(endpoint.url, content=content, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except Exception as exc:  # any transport failure is a failed attempt, retried like a 5xx
            error = f"{type(exc).__name__}: {exc}"[:500]
        ms = int((time.perf_counter() - started) * 1000)
        attempts = delivery.attempts + 1
        if error is None:
            updated = replace(delivery, status=DELIVERED, attempts=attempts, last_attempt_at=now, delivered_at=now,
                              next_attempt_at=None, response_status=status, last_error=None)  # fmt: skip
        else:
            retry_at = now + timedelta(seconds=self._backoff.delay(attempts))
            expired = retry_at > delivery.created_at + self._window
            updated = replace(
                delivery, status=FAILED if expired else PENDING, attempts=attempts, last_attempt_at=now,
                next_attempt_at=None if expired else retry_at, response_status=status, last_error=error,
            )  # fmt: skip
            logger.warning(
                "webhook delivery %s to endpoint %s failed (%s)%s", delivery.id, endpoint.id, error,
                ", dead-lettered" if expired else "", extra={"operation": "webhook", "delivery_id": delivery.id},
            )  # fmt: skip
        await self._state.update_delivery(updated, AttemptRecord(delivery.id, now, status, error, ms))
        return updated.status

    async def run_once(self, now: datetime | None = None) -> PassReport:
        """Event pass until caught up (bounded), the ``lot.expiring`` step until caught up (bounded), then one
        round of sending. ``now``: the time lots and retry schedules are judged at (the bank's clock by default)."""
        at = now or read_clock(self._ledger.clock)
        read = queued = warned = 0
        for _ in range(100):
            got, added = await self.pump(at)
            read, queued = read + got, queued + added
            if got < self._batch:
                break
        for _ in range(100):
            found, added, done = await self.warn_expiring(at)
            warned, queued = warned + found, queued + added
            if done:
                break
        delivered, failed, dead = await self.send_due(now)
        return PassReport(read, queued, delivered, failed, dead, warned)


def _delivery(
    endpoint: EndpointRecord, event_id: str, event_type: str, seq: int, position: int, text: str, now: datetime
) -> DeliveryRecord:
    # The id follows from (endpoint, event): queueing the same event again (a pass interrupted before its cursor
    # moved) names the same delivery.
    delivery_id = str(uuid.uuid5(_NAMESPACE, f"{endpoint.id}|{event_id}"))
    return DeliveryRecord(delivery_id, endpoint.id, event_id, event_type, seq, position, text, PENDING, 0, now,
                          next_attempt_at=now)  # fmt: skip
