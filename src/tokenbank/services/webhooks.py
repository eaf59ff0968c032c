"""``bank.webhooks``: endpoints, their deliveries and dead letters, and running a delivery pass.

Endpoints, deliveries and every attempt are kept in the store. Delivery itself is done by ``tokenbank worker``
(or :meth:`WebhooksService.run_once`), see services/delivery.py for the order and retry rules.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tokenbank.errors import InvalidRequestError, WebhookNotFoundError
from tokenbank.ids import check_lookup_id, new_id
from tokenbank.services import signing
from tokenbank.services.delivery import Backoff, Dispatcher, PassReport
from tokenbank.services.event_payloads import EVENT_TYPES, TRANSACTION_CREATED
from tokenbank.services.feed import check_count
from tokenbank.storage.durable import FAILED, PENDING, AttemptRecord, DeliveryRecord, EndpointRecord, EventState

if TYPE_CHECKING:
    from tokenbank.ledger import Ledger

_MAX_URL = 2048


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    """``whsec_...``: give it to the receiver, which verifies each delivery's ``webhook-signature`` with it."""
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event for one endpoint: ``pending`` (queued or waiting for a retry), ``delivered`` or ``failed``
    (dead-lettered after the retry window; :meth:`WebhooksService.redeliver` queues it again)."""

    id: str
    endpoint_id: str
    event_id: str
    """Also the ``webhook-id`` header: the same on every attempt, so receivers can drop duplicates."""
    event_type: str
    seq: int
    status: str
    attempts: int
    payload: dict[str, Any]
    queued_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    response_status: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    attempted_at: datetime
    response_status: int | None
    error: str | None
    duration_ms: int


def _public(endpoint: EndpointRecord) -> WebhookEndpoint:
    return WebhookEndpoint(endpoint.id, endpoint.url, endpoint.events, endpoint.secret, endpoint.created_at)


def _delivery(record: DeliveryRecord) -> WebhookDelivery:
    return WebhookDelivery(
        id=record.id, endpoint_id=record.endpoint_id, event_id=record.event_id, event_type=record.event_type,
        seq=record.seq, status=record.status, attempts=record.attempts, payload=json.loads(record.payload),
        queued_at=record.created_at, next_attempt_at=record.next_attempt_at, last_attempt_at=record.last_attempt_at,
        delivered_at=record.delivered_at, response_status=record.response_status, last_error=record.last_error,
    )  # fmt: skip


def check_url(url: object) -> str:
    if not isinstance(url, str) or len(url) > _MAX_URL:
        raise InvalidRequestError(f"webhook url must be a string of at most {_MAX_URL} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError("webhook url must be an http:// or https:// URL with a host")
    return url


def check_events(events: object) -> tuple[str, ...]:
    if isinstance(events, str) or not isinstance(events, Sequence) or not events:
        raise InvalidRequestError(f"events must be a non-empty list of event types from {list(EVENT_TYPES)}")
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise InvalidRequestError(f"unknown event types {unknown}; known: {list(EVENT_TYPES)}")
    return tuple(dict.fromkeys(events))


class WebhooksService:
    """Webhook endpoints of one bank's token."""

    def __init__(self, ledger: Ledger, state: EventState) -> None:
        self._ledger = ledger
        self._state = state

    async def add(
        self, url: str, *, events: Sequence[str] = (TRANSACTION_CREATED,), secret: str | None = None
    ) -> WebhookEndpoint:
        """Register an endpoint; it receives the events of transactions committed from now on. A ``whsec_``
        secret is generated when none is given. Raises InvalidRequestError, TokenNotInitializedError."""
        check_url(url)
        kinds = check_events(events)
        if secret is None:
            secret = signing.new_secret()
        signing.secret_key(secret)
        await self._ledger.token_record()
        record = EndpointRecord(new_id(), url, kinds, secret, datetime.now(UTC))
        await self._state.add_endpoint(record)
        return _public(record)

    async def list(self) -> builtins.list[WebhookEndpoint]:
        return [_public(record) for record in await self._state.list_endpoints()]

    async def remove(self, endpoint_id: str) -> None:
        """Stop delivering to the endpoint (its delivery log stays). Raises WebhookNotFoundError."""
        if not await self._state.remove_endpoint(check_lookup_id(endpoint_id, "webhook endpoint")):
            raise WebhookNotFoundError(f"webhook endpoint not found: {endpoint_id}")

    async def deliveries(
        self, endpoint_id: str, *, failed: bool = False, limit: int = 100
    ) -> builtins.list[WebhookDelivery]:
        """The endpoint's deliveries, newest event first; ``failed``: only dead letters."""
        check_lookup_id(endpoint_id, "webhook endpoint")
        check_count(limit, "limit", low=1, high=10_000)
        return [_delivery(r) for r in await self._state.list_deliveries(endpoint_id, failed=failed, limit=limit)]

    async def attempts(self, delivery_id: str) -> builtins.list[DeliveryAttempt]:
        """Every attempt of a delivery, oldest first."""
        records: builtins.list[AttemptRecord] = await self._state.attempts(check_lookup_id(delivery_id, "delivery"))
        return [DeliveryAttempt(a.attempted_at, a.response_status, a.error, a.duration_ms) for a in records]

    async def redeliver(self, delivery_id: str) -> WebhookDelivery:
        """Queue a delivery again (typically a dead letter) with a fresh retry window. It goes back to its place
        in the endpoint's event order, so it is sent before the endpoint's later pending events. Raises
        WebhookNotFoundError."""
        record = await self._state.get_delivery(check_lookup_id(delivery_id, "delivery"))
        if record is None:
            raise WebhookNotFoundError(f"webhook delivery not found: {delivery_id}")
        now = datetime.now(UTC)
        queued = replace(record, status=PENDING, attempts=0, created_at=now, next_attempt_at=now)
        await self._state.update_delivery(queued)
        return _delivery(queued)

    def dispatcher(self, *, retry_hours: float | None = None, backoff: Backoff | None = None) -> Dispatcher:
        """A delivery runner for this token (``async with``): what ``tokenbank worker`` uses."""
        return Dispatcher(self._ledger, self._state, retry_hours=retry_hours, backoff=backoff)

    async def run_once(self, now: datetime | None = None) -> PassReport:
        """One event pass and one round of sending, in this process (the worker does this in a loop). ``now``:
        the time retry schedules are compared with. Raises ConfigurationError without httpx."""
        async with self.dispatcher() as dispatcher:
            return await dispatcher.run_once(now)


__all__ = ["FAILED", "DeliveryAttempt", "WebhookDelivery", "WebhookEndpoint", "WebhooksService"]
