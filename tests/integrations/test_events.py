"""The server-sent-events stream, through a real uvicorn server running the app with its lifespan."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.backends import BoundBackend
from tests.integrations.conftest import API_KEY, AUTH, assert_error, running_server
from tokenbank import TokenBank
from tokenbank.integrations.fastapi import (
    create_app,
    create_router,
    get_token_bank,
    install_error_handlers,
    token_bank_lifespan,
)
from tokenbank.integrations.fastapi.sse import balance_event_stream

TIMEOUT = 15


async def next_event(lines: AsyncIterator[str]) -> tuple[str, str]:
    """The next ``(event, data)`` of an SSE line stream (comments and ``retry:`` skipped)."""
    event, data = "message", ""
    async for line in lines:
        if line == "":
            if data:
                return event, data
            event, data = "message", ""
        elif line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data += line.removeprefix("data:").strip()
    raise AssertionError("the stream ended")


async def wait_for_line(lines: AsyncIterator[str], wanted: str) -> None:
    async for line in lines:
        if line == wanted:
            return
    raise AssertionError(f"the stream ended before {wanted!r}")


def subscribers(app: FastAPI) -> dict[str, list[object]]:
    # Internal on purpose: proving that a closed stream left no subscription behind needs the hub itself.
    bank: TokenBank = app.state.token_bank
    return bank._events._subscribers  # type: ignore[return-value]


async def unsubscribed(app: FastAPI) -> None:
    """Wait (bounded) until the app's bank has no balance subscriber left."""
    for _ in range(TIMEOUT * 50):
        if not subscribers(app):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"subscriptions left behind: {list(subscribers(app))}")


async def test_stream_receives_a_transfer_made_by_another_client(api_backend: BoundBackend) -> None:
    app = create_app(api_backend.settings(initial_supply=1000), API_KEY)
    async with (
        running_server(app) as base,
        httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as listener,
        httpx.AsyncClient(base_url=base, timeout=TIMEOUT, headers=AUTH) as payer,
    ):
        assert (await payer.post("/mint", json={"to_user_id": "alice", "amount": "20"})).status_code == 201
        subscribed = asyncio.Event()

        async def listen() -> list[tuple[str, str]]:
            async with listener.stream("GET", "/accounts/bob/events") as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                lines = response.aiter_lines()
                await wait_for_line(lines, ": subscribed")
                subscribed.set()
                return [await next_event(lines), await next_event(lines)]

        async def pay() -> list[str]:
            await subscribed.wait()
            ids = []
            for amount in ("2.50", "1"):
                response = await payer.post(
                    "/transfers", json={"from_user_id": "alice", "to_user_id": "bob", "amount": amount}
                )
                assert response.status_code == 201, response.text
                ids.append(response.json()["id"])
            return ids

        async with asyncio.timeout(TIMEOUT):
            events, ids = await asyncio.gather(listen(), pay())

        first, second = (json.loads(data) for _, data in events)
        assert [name for name, _ in events] == ["balance", "balance"]
        assert (first["user_id"], first["change"], first["balance"]) == ("bob", "2.50", "2.50")
        assert (second["change"], second["balance"]) == ("1.00", "3.50")
        assert [first["transaction_id"], second["transaction_id"]] == ids
        assert first["transaction_type"] == "transfer"

        # The client went away: its subscription must go with it.
        await unsubscribed(app)


async def test_keepalive_comments_and_clean_unsubscribe(api_backend: BoundBackend) -> None:
    app = FastAPI(lifespan=token_bank_lifespan(api_backend.settings()))
    app.include_router(create_router(prefix="/api", sse_keepalive=0.1, allow_anonymous=True))
    install_error_handlers(app)
    async with running_server(app) as base, httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as client:
        async with asyncio.timeout(TIMEOUT), client.stream("GET", "/api/accounts/carol/events") as response:
            lines = response.aiter_lines()
            await wait_for_line(lines, ": subscribed")
            await wait_for_line(lines, ": keep-alive")
            await wait_for_line(lines, ": keep-alive")
            assert list(subscribers(app)) == ["carol"]
        await unsubscribed(app)
        assert_error(await client.get("/api/accounts/a%01b/events"), 422, "invalid_account")


async def test_events_refused_when_notifications_are_off(api_backend: BoundBackend) -> None:
    async with TokenBank(api_backend.settings(enable_notifications=False)) as bank:
        app = create_app(bank=bank, api_key=API_KEY)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/accounts/alice/events")
            assert_error(response, 500, "configuration_error")
            assert "TOKEN_ENABLE_NOTIFICATIONS" in response.json()["message"]


async def test_lifespan_stores_and_closes_the_bank(api_backend: BoundBackend) -> None:
    app = FastAPI(lifespan=token_bank_lifespan(TokenBank(api_backend.settings(initial_supply=5))))
    app.include_router(create_router(allow_anonymous=True))
    install_error_handlers(app)
    async with app.router.lifespan_context(app):
        bank = app.state.token_bank
        assert isinstance(bank, TokenBank)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/token")).json()["total_supply"] == "5.00"
    assert not hasattr(app.state, "token_bank")
    # Without the lifespan there is no bank: a clear configuration error, not an AttributeError.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/token")
        assert_error(response, 500, "configuration_error")
        assert "token_bank_lifespan" in response.json()["message"]
    assert get_token_bank.__name__ == "get_token_bank"


async def test_slow_reader_gets_overflow_not_a_gap(api_bank: TokenBank) -> None:
    response = await balance_event_stream(api_bank, "dave", keepalive=5, max_pending=1)
    chunks = aiter(response.body_iterator)
    assert "subscribed" in str(await anext(chunks))
    # Updates reach every callback of an account in subscription order, so once this later callback has seen all
    # three, the stream's queue has too (over pub/sub or NOTIFY they arrive after the transfers return).
    seen: list[object] = []
    all_three = asyncio.Event()

    def count(update: object) -> None:
        seen.append(update)
        if len(seen) == 3:
            all_three.set()

    unsubscribe = await api_bank.balances.subscribe_to_balance_updates("dave", count)
    for amount in ("1", "2", "3"):  # nobody reads: the second update finds the queue full
        await api_bank.transfer("treasury", "dave", amount)
    async with asyncio.timeout(TIMEOUT):
        await all_three.wait()
    unsubscribe()
    async with asyncio.timeout(TIMEOUT):
        first = str(await anext(chunks))
        assert "event: balance" in first and '"change":"1.00"' in first
        assert str(await anext(chunks)).startswith("event: overflow")
        with pytest.raises(StopAsyncIteration):
            await anext(chunks)
    assert "dave" not in api_bank._events._subscribers  # the generator's cleanup unsubscribed
