"""Webhooks on every backend: endpoints in the store, signed deliveries, order, retries, dead letters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.feed_support import settle
from tests.webhooks.receiver import running_receiver, signature_is_valid
from tokenbank import TokenBank
from tokenbank.errors import InvalidRequestError, WebhookNotFoundError


def _later(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


async def test_endpoints_are_stored_listed_and_removed(bank: TokenBank) -> None:
    first = await bank.webhooks.add("https://example.test/a")
    second = await bank.webhooks.add(
        "http://127.0.0.1:9/b", events=["balance.threshold", "transaction.created"], secret="whsec_" + "QUJD" * 8
    )
    assert first.secret.startswith("whsec_") and first.events == ("transaction.created",)
    assert second.secret == "whsec_" + "QUJD" * 8
    assert [e.id for e in await bank.webhooks.list()] == [first.id, second.id]
    await bank.webhooks.remove(first.id)
    assert [e.url for e in await bank.webhooks.list()] == ["http://127.0.0.1:9/b"]
    with pytest.raises(WebhookNotFoundError):
        await bank.webhooks.remove(first.id)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://example.test/x"}, "http"),
        ({"url": "https:///nohost"}, "host"),
        ({"url": "https://e.test", "events": "transaction.created"}, "list"),
        ({"url": "https://e.test", "events": ["transfer.done"]}, "unknown event"),
        ({"url": "https://e.test", "secret": "plain"}, "whsec_"),
        ({"url": "https://e.test", "secret": "whsec_!!!"}, "base64"),
        ({"url": "https://e.test", "secret": "whsec_QUJD"}, "bytes"),
    ],
)
async def test_bad_endpoints_are_refused_and_nothing_is_stored(
    bank: TokenBank, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        await bank.webhooks.add(**kwargs)  # type: ignore[arg-type]
    assert await bank.webhooks.list() == []


async def test_a_delivery_is_a_signed_json_post_of_the_transaction(bank: TokenBank) -> None:
    with running_receiver() as receiver:
        endpoint = await bank.webhooks.add(receiver.url)
        tx = await bank.transfer("treasury", "alice", "12.5", metadata={"order": 42})
        await settle(bank)
        report = await bank.webhooks.run_once()
        assert (report.queued, report.delivered) == (1, 1)
        [request] = receiver.requests
        assert signature_is_valid(endpoint.secret, request.headers, request.body)
        assert not signature_is_valid("whsec_" + "QUJD" * 8, request.headers, request.body)
        assert request.headers["content-type"] == "application/json"
        assert abs(int(request.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 60
        event = request.event
        assert event["type"] == "transaction.created"
        assert event["data"]["id"] == tx.id and event["data"]["amount"] == "12.50"
        assert event["data"]["metadata"] == {"order": 42} and event["data"]["seq"] == tx.seq
        [delivery] = await bank.webhooks.deliveries(endpoint.id)
        assert delivery.status == "delivered" and delivery.event_id == request.headers["webhook-id"]
        assert delivery.response_status == 200 and delivery.attempts == 1
        assert await bank.webhooks.run_once() == type(report)(0, 0, 0, 0, 0)  # nothing twice


async def test_a_failing_delivery_holds_back_that_endpoint_only_and_is_retried_in_order(bank: TokenBank) -> None:
    with running_receiver(fail_first=2) as flaky, running_receiver() as healthy:
        slow = await bank.webhooks.add(flaky.url)
        fine = await bank.webhooks.add(healthy.url)
        sent = [await bank.transfer("treasury", f"u{n}", 1) for n in range(3)]
        await settle(bank)
        first = await bank.webhooks.run_once()
        assert first.queued == 6 and first.delivered == 3 and first.failed_attempts == 1
        assert len(flaky.requests) == 1  # the failed head blocks the endpoint's later events
        assert [r.event["data"]["id"] for r in healthy.acknowledged] == [tx.id for tx in sent]
        [waiting, *_] = [d for d in await bank.webhooks.deliveries(slow.id) if d.attempts]
        assert waiting.status == "pending" and waiting.next_attempt_at is not None
        assert waiting.last_error == "HTTP 500" and waiting.response_status == 500
        assert (await bank.webhooks.run_once()).delivered == 0  # not due yet: backoff
        await bank.webhooks.run_once(now=_later(1))
        await bank.webhooks.run_once(now=_later(2))
        assert [r.event["data"]["id"] for r in flaky.acknowledged] == [tx.id for tx in sent]
        ids = [r.headers["webhook-id"] for r in flaky.requests]
        assert ids[0] == ids[1] == ids[2]  # the same message id on every attempt
        assert all(signature_is_valid(slow.secret, r.headers, r.body) for r in flaky.requests)
        attempts = await bank.webhooks.attempts(waiting.id)
        assert [a.response_status for a in attempts] == [500, 500, 200]
        assert {d.status for d in await bank.webhooks.deliveries(fine.id)} == {"delivered"}


async def test_dead_letters_after_the_retry_window_and_redelivery(bank: TokenBank) -> None:
    with running_receiver() as receiver:
        endpoint = await bank.webhooks.add(receiver.url)
        receiver.failing = True
        doomed = await bank.transfer("treasury", "alice", 1)
        await settle(bank)
        await bank.webhooks.run_once()
        assert await bank.webhooks.deliveries(endpoint.id, failed=True) == []
        report = await bank.webhooks.run_once(now=_later(25))  # past TOKEN_WEBHOOK_RETRY_HOURS (24)
        assert report.dead_lettered == 1
        [dead] = await bank.webhooks.deliveries(endpoint.id, failed=True)
        assert dead.status == "failed" and dead.payload["data"]["id"] == doomed.id
        receiver.failing = False
        after = await bank.transfer("treasury", "bob", 1)
        await settle(bank)
        await bank.webhooks.run_once()  # the dead letter no longer blocks the endpoint
        assert [r.event["data"]["id"] for r in receiver.acknowledged] == [after.id]
        again = await bank.webhooks.redeliver(dead.id)
        assert again.status == "pending"
        await bank.webhooks.run_once()
        assert [r.event["data"]["id"] for r in receiver.acknowledged] == [after.id, doomed.id]
        assert await bank.webhooks.deliveries(endpoint.id, failed=True) == []
        with pytest.raises(WebhookNotFoundError):
            await bank.webhooks.redeliver("no-such-delivery")


async def test_an_endpoint_gets_events_committed_after_it_was_added(bank: TokenBank) -> None:
    await bank.transfer("treasury", "before", 1)
    with running_receiver() as receiver:
        await bank.webhooks.add(receiver.url)
        later = await bank.transfer("treasury", "after", 1)
        await settle(bank)
        await bank.webhooks.run_once()
        assert [r.event["data"]["id"] for r in receiver.requests] == [later.id]
