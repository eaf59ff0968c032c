"""``tokenbank serve --workers N``: N uvicorn processes, each with its own bank on one store, taking concurrent
writes with shared idempotency keys; SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.backends import BoundBackend, Scope, by_name, params
from tests.hybrid.support import free_port
from tests.support import history
from tokenbank import Settings, TokenBank

WORKERS, REQUESTS, KEYS = 2, 240, 60


def _workers_of(pid: int) -> list[int]:
    """Child processes of ``pid`` that are uvicorn workers (multiprocessing's spawned children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"\nPPid:\t{pid}\n" in status and b"multiprocessing.spawn" in cmdline:
            found.append(int(entry.name))
    return found


def _wait_healthy(client: httpx.Client, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[1]
        try:
            if client.get("/health").status_code == 200 and len(_workers_of(server.pid)) == WORKERS:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("serve --workers did not come up")


def _transfer(client: httpx.Client, n: int) -> int:
    key = n % KEYS  # every key is sent four times, from different threads, so different workers race on it
    body = {"from_user_id": "treasury", "to_user_id": f"u{key % 5}", "amount": "1.25"}
    response = client.post("/transfers", json=body, headers={"Idempotency-Key": f"k{key}"})
    return response.status_code


@pytest.fixture(params=params(by_name("sqlite", "postgres")))
def served(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    return request.param.bind(Scope(tmp_path))  # type: ignore[no-any-return]


def _serve_and_send(settings: Settings) -> Counter[int]:
    """Start ``serve --workers``, send the transfers from 8 threads, stop it with SIGTERM; the status codes."""
    port = free_port()
    env = {**os.environ, "TOKENBANK_API_KEY": "secret-key", **_env_of(settings)}
    command = [sys.executable, "-m", "tokenbank", "serve", "--workers", str(WORKERS), "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--no-access-log"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        headers = {"Authorization": "Bearer secret-key"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
            _wait_healthy(client, server)
            with ThreadPoolExecutor(8) as pool:
                codes = Counter(pool.map(lambda n: _transfer(client, n), range(REQUESTS)))
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        return codes
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate()


async def test_workers_share_one_store(served: BoundBackend) -> None:
    settings: Settings = served.settings(initial_supply=1000)
    async with TokenBank(settings):
        pass  # the token exists before the server starts (serve never creates one)
    codes = await asyncio.to_thread(_serve_and_send, settings)
    assert codes == {201: KEYS, 200: REQUESTS - KEYS}, codes

    async with TokenBank(settings.model_copy(update={"auto_create": False})) as bank:
        received = await bank.get_balances([f"u{n}" for n in range(5)])
        assert sum(received.values()) == Decimal("1.25") * KEYS
        assert await bank.get_balance("treasury") + sum(received.values()) == await bank.get_total_supply()
        assert len(await history(bank, "treasury")) == KEYS + 1  # the initial mint and one transfer per key


_VARIABLES = {
    "database_url": "DATABASE_URL",
    "database_schema": "TOKEN_DATABASE_SCHEMA",
    "storage_mode": "TOKEN_STORAGE_MODE",
    "redis_url": "REDIS_URL",
    "key_prefix": "TOKEN_KEY_PREFIX",
    "symbol": "TOKEN_SYMBOL",
}


def _env_of(settings: Settings) -> dict[str, str]:
    """The environment that points a process at the same store and token as ``settings``."""
    values = {name: getattr(settings, name) for name in _VARIABLES}
    return {_VARIABLES[name]: str(value) for name, value in values.items() if value is not None}
