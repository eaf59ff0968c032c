"""The dashboard's access rules and data endpoints, without a browser: closed by default, the ``authorize``
hook on the page and on every data endpoint, mounting on an app of one's own, and the modes without a feed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request

from tests.backends import BoundBackend, Scope, by_name, params
from tests.integrations.conftest import assert_error, running_server
from tests.support import open_bank
from tokenbank import ConfigurationError, TokenBank
from tokenbank.integrations.dashboard import DASHBOARD_READ, create_dashboard
from tokenbank.integrations.fastapi import create_app, install_error_handlers, token_bank_lifespan

DATA = ("/api/overview", "/api/health", "/api/volume", "/api/leaderboard", "/api/feed", "/api/accounts/alice")
TIMEOUT = 15


@pytest.fixture(params=params(by_name("sqlite", "postgres")))
async def sql_bank(
    request: pytest.FixtureRequest, tmp_path: Any, clean_env: pytest.MonkeyPatch
) -> AsyncIterator[TokenBank]:
    backend: BoundBackend = request.param.bind(Scope(tmp_path))
    async with open_bank(backend, initial_supply=1000) as bank:
        yield bank


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash.test")


def own_app(**options: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(create_dashboard(**options))
    install_error_handlers(app)
    return app


def test_a_dashboard_without_a_guard_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="authorize=") as info:
        create_dashboard()
    assert info.value.code == "configuration_error"
    create_dashboard(allow_anonymous=True)
    create_dashboard(authorize=lambda request, action, user_id: None)
    create_dashboard(dependencies=[Depends(lambda: None)])


@pytest.mark.parametrize(
    "bad",
    [
        {"prefix": "dashboard"},
        {"prefix": "/dashboard/"},
        {"leaderboard_size": 0},
        {"feed_size": 1001},
        {"history_page_size": True},
        {"volume_hours": "24"},
        {"poll_interval": 0},
        {"refresh_seconds": float("nan")},
        {"bank": "sqlite+aiosqlite:///x.db"},
    ],
)
def test_bad_dashboard_options_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="create_dashboard"):
        create_dashboard(allow_anonymous=True, **bad)


async def test_a_refusing_hook_is_403_for_the_page_and_every_data_endpoint(sql_bank: TokenBank) -> None:
    seen: list[tuple[str, str | None]] = []

    def refuse(request: Request, action: str, user_id: str | None) -> None:
        seen.append((action, user_id))
        raise HTTPException(403, detail={"code": "forbidden", "message": "operators only"})

    app = own_app(bank=sql_bank, authorize=refuse)
    async with client_of(app) as client:
        for path in ("", *DATA, "/api/feed/stream"):
            assert_error(await client.get("/dashboard" + path), 403, "forbidden")
        # The script, style sheet and icon carry no data.
        assert (await client.get("/dashboard/static/dashboard.js")).status_code == 200
    assert all(action == DASHBOARD_READ for action, _ in seen)
    assert len(seen) == 2 + len(DATA)
    assert ("dashboard.read", "alice") in seen
    assert [user for _, user in seen].count(None) == 1 + len(DATA)


async def test_an_allowing_hook_sees_the_account_of_a_lookup(sql_bank: TokenBank) -> None:
    seen: list[tuple[str, str | None]] = []

    async def allow(request: Request, action: str, user_id: str | None) -> None:
        seen.append((action, user_id))

    await sql_bank.mint("o'brien: {x}", "3")
    app = own_app(bank=sql_bank, authorize=allow, prefix="/ops/board")
    async with client_of(app) as client:
        page = await client.get("/ops/board")
        assert page.status_code == 200
        assert 'data-base="/ops/board"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        answer = await client.get("/ops/board/api/accounts/o'brien: {x}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["balance"] == "3.00"
    assert seen == [(DASHBOARD_READ, None), (DASHBOARD_READ, "o'brien: {x}")]


async def test_a_dependency_guards_the_dashboard_and_its_files(sql_bank: TokenBank) -> None:
    def api_key(request: Request) -> None:
        if request.headers.get("x-key") != "k":
            raise HTTPException(401, detail={"code": "unauthorized", "message": "key please"})

    app = own_app(bank=sql_bank, dependencies=[Depends(api_key)])
    async with client_of(app) as client:
        for path in ("", "/static/dashboard.css", *DATA):
            assert_error(await client.get("/dashboard" + path), 401, "unauthorized")
            assert (await client.get("/dashboard" + path, headers={"x-key": "k"})).status_code == 200


async def test_mounted_on_an_app_of_ones_own(sql_bank: TokenBank) -> None:
    """The app's bank (its lifespan), a fixed bank, a factory and an async factory all serve the same data."""
    await sql_bank.mint("alice", "12.5")
    fixed = own_app(bank=sql_bank, allow_anonymous=True)
    made = own_app(bank=lambda: sql_bank, allow_anonymous=True)

    async def find() -> TokenBank:
        return sql_bank

    awaited = own_app(bank=find, allow_anonymous=True)
    wrong = own_app(bank=lambda: "not a bank", allow_anonymous=True)
    for app in (fixed, made, awaited):
        async with client_of(app) as client:
            board = (await client.get("/dashboard/api/leaderboard")).json()
            assert board == {"available": True, "holders": [{"user_id": "alice", "balance": "12.50", "rank": 1}]}
    async with client_of(wrong) as client:
        assert_error(await client.get("/dashboard/api/overview"), 500, "configuration_error")

    lifespan_app = FastAPI(lifespan=token_bank_lifespan(sql_bank.settings))
    lifespan_app.include_router(create_dashboard(allow_anonymous=True))
    install_error_handlers(lifespan_app)
    async with lifespan_app.router.lifespan_context(lifespan_app), client_of(lifespan_app) as client:
        overview = (await client.get("/dashboard/api/overview")).json()
        assert overview["token"]["total_supply"] == str(await sql_bank.get_total_supply())
        assert overview["token"]["circulating_supply"] == "12.50"


async def test_data_endpoints(sql_bank: TokenBank) -> None:
    await sql_bank.mint("alice", "10")
    tx = await sql_bank.transfer("alice", "bob", "2.5", reason="lunch")
    app = create_app(bank=sql_bank, api_key="k")
    async with client_of(app) as client:
        health = (await client.get("/dashboard/api/health")).json()
        assert health["status"] == "ok" and health["sync"] is None
        volume = (await client.get("/dashboard/api/volume")).json()
        assert volume["available"] and len(volume["buckets"]) == 24
        assert volume["buckets"][-1]["volume"] == "2.50" and volume["buckets"][-1]["count"] == 1
        feed = (await client.get("/dashboard/api/feed")).json()
        assert feed["head"] == tx.seq
        assert feed["items"][0] == {
            "id": tx.id, "seq": tx.seq, "type": "transfer", "from_user_id": "alice", "to_user_id": "bob",
            "amount": "2.50", "timestamp": tx.timestamp.isoformat(), "reason": "lunch",
        }  # fmt: skip
        assert [item["type"] for item in feed["items"]] == ["transfer", "mint", "mint"]
        assert_error(await client.get("/dashboard/api/accounts/a%01b"), 422, "invalid_account")
        assert_error(await client.get("/dashboard/api/accounts/alice?cursor=nope"), 422, "invalid_request")
        assert_error(await client.get("/dashboard/static/../app.py"), 404, "not_found")
        without = create_app(bank=sql_bank, api_key="k", dashboard=False)
        async with client_of(without) as other:
            assert (await other.get("/dashboard")).status_code == 404


async def next_transaction(lines: AsyncIterator[str]) -> dict[str, Any]:
    async for line in lines:
        if line.startswith("data:"):
            return json.loads(line.removeprefix("data:"))  # type: ignore[no-any-return]
    raise AssertionError("the stream ended")


@pytest.mark.parametrize("resume", ["query", "last-event-id", "junk-id"])
async def test_the_stream_resumes_after_a_seq_and_follows(sql_bank: TokenBank, resume: str) -> None:
    await sql_bank.mint("alice", "10")
    first = await sql_bank.transfer("alice", "bob", "1")
    second = await sql_bank.transfer("alice", "bob", "2")
    app = FastAPI()
    app.include_router(create_dashboard(bank=sql_bank, allow_anonymous=True, poll_interval=0.05))
    install_error_handlers(app)
    resumes: dict[str, tuple[dict[str, int], dict[str, str | bytes]]] = {
        "query": ({"after": first.seq}, {}),
        "last-event-id": ({}, {"Last-Event-ID": str(first.seq)}),
        "junk-id": ({}, {"Last-Event-ID": "\u00b2".encode("latin-1")}),  # not an id: ignored, follows from now
    }
    query, headers = resumes[resume]
    async with running_server(app) as base, httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as client:
        path = "/dashboard/api/feed/stream"
        # httpx sends the junk-id header's bytes value as it is; its annotations take all-str or all-bytes headers.
        async with asyncio.timeout(TIMEOUT), client.stream("GET", path, params=query, headers=headers) as response:  # type: ignore[arg-type]
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            if resume != "junk-id":
                assert (await next_transaction(lines))["id"] == second.id
            else:
                await anext(lines)  # the stream has started: what follows is new
            third = await sql_bank.burn("bob", "0.5")
            assert (await next_transaction(lines))["id"] == third.id


@pytest.mark.redis
async def test_redis_mode_shows_what_it_has(tmp_path: Any, clean_env: pytest.MonkeyPatch) -> None:
    """No SQL ledger of record: the volume chart and the feed say why they are empty; the rest works."""
    backend = next(iter(params(by_name("redis")))).values[0].bind(Scope(tmp_path))
    async with open_bank(backend, initial_supply=100) as bank:
        await bank.mint("alice", "4")
        app = own_app(bank=bank, allow_anonymous=True)
        async with client_of(app) as client:
            for path in ("/api/volume", "/api/feed"):
                answer = (await client.get("/dashboard" + path)).json()
                assert answer["available"] is False and "sql or hybrid" in answer["reason"]
            board = (await client.get("/dashboard/api/leaderboard")).json()
            assert board["holders"] == [{"user_id": "alice", "balance": "4.00", "rank": 1}]
            assert (await client.get("/dashboard/api/overview")).json()["mode"] == "redis"
            assert_error(await client.get("/dashboard/api/feed/stream"), 500, "configuration_error")


@pytest.mark.redis
@pytest.mark.postgres
async def test_hybrid_mode_shows_the_sync_lag_and_feeds_synced_transactions(
    tmp_path: Any, clean_env: pytest.MonkeyPatch
) -> None:
    backend = next(iter(params(by_name("hybrid")))).values[0].bind(Scope(tmp_path))
    async with open_bank(backend, initial_supply=100) as bank:
        tx = await bank.transfer("treasury", "alice", "4")
        app = own_app(bank=bank, allow_anonymous=True)
        async with client_of(app) as client:
            health = (await client.get("/dashboard/api/health")).json()
            assert health["mode"] == "hybrid"
            assert health["sync"]["name"] == "sync" and "lag" in health["sync"]["detail"]
            async with asyncio.timeout(TIMEOUT):  # in the feed once the sync worker wrote it to PostgreSQL
                while True:
                    feed = (await client.get("/dashboard/api/feed")).json()
                    if any(item["id"] == tx.id for item in feed["items"]):
                        break
                    await asyncio.sleep(0.1)
