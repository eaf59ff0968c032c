"""Fixtures of the REST API tests: a bank on SQLite (file) and PostgreSQL, the app around it, and clients."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from tests.backends import Backend, BoundBackend, Scope, by_name, params
from tests.support import open_bank
from tokenbank import TokenBank
from tokenbank.integrations.fastapi import create_app

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
BASE_URL = "http://tokenbank.test"


@pytest.fixture(params=params(by_name("sqlite", "postgres", "redis")))
def api_backend(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    """SQLite in a temp file, and PostgreSQL in this session's schema (test isolation by token symbol)."""
    backend: Backend = request.param
    return backend.bind(Scope(tmp_path))


@pytest.fixture
async def api_bank(api_backend: BoundBackend) -> AsyncIterator[TokenBank]:
    """An open bank with 1000.00 in the treasury; its invariants must hold after the test."""
    async with open_bank(api_backend, initial_supply=1000) as bank:
        yield bank


@pytest.fixture
def app(api_bank: TokenBank) -> FastAPI:
    return create_app(bank=api_bank, api_key=API_KEY)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Authenticated client of the app (in-process, through httpx's ASGITransport)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers=AUTH) as c:
        yield c


async def fund(client: httpx.AsyncClient, user: str, amount: str) -> dict[str, Any]:
    response = await client.post("/transfers", json={"from_user_id": "treasury", "to_user_id": user, "amount": amount})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


_ANY: Any = object()


def assert_error(response: httpx.Response, status: int, code: str, param: str | None = _ANY) -> None:
    """An error answer: the status, and a body of exactly ``{code, message, param}`` (``param`` as given, when
    given: the request field at fault, or None)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "param"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    assert body["param"] is None or (isinstance(body["param"], str) and body["param"]), body
    if param is not _ANY:
        assert body["param"] == param, body


@contextlib.asynccontextmanager
async def running_server(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn (lifespan on) on a free loopback port in this event loop; yields its URL.
    A real server, because httpx's ASGITransport buffers whole responses and cannot stream events."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning", ws="none", http="h11", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(20):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped during startup")
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
        sock.close()
