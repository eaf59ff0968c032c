"""Outage: a dead Redis surfaces promptly as StorageUnavailableError, and the store recovers when it is back.

Runs its OWN redis-server on a free port (the shared one is never stopped).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from tokenbank import Settings, TokenBank
from tokenbank.errors import StorageUnavailableError, TokenNotInitializedError

pytestmark = pytest.mark.redis


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        server = shutil.which("redis-server")
        assert server is not None
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("own redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def own_redis(redis_url: str) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = OwnRedis(_free_port())
    server.start()
    yield server
    server.kill()


async def test_outage_is_reported_promptly_and_recovered(own_redis: OwnRedis) -> None:
    settings = Settings(
        storage_mode="redis", redis_url=f"redis://127.0.0.1:{own_redis.port}/0", key_prefix="outage",
        symbol="TARO", initial_supply="100", hold_sweep_interval=0,
    )  # fmt: skip
    async with TokenBank(settings) as bank:
        await bank.transfer("treasury", "alice", "1")
        own_redis.kill()
        for call in (lambda: bank.transfer("treasury", "alice", "1"), lambda: bank.get_balance("alice")):
            started = time.monotonic()
            with pytest.raises(StorageUnavailableError):
                await asyncio.wait_for(call(), timeout=15)
            assert time.monotonic() - started < 5
        with pytest.raises(StorageUnavailableError):
            await bank.storage.ping()

        own_redis.start()  # empty: no persistence
        await bank.storage.ping()
        with pytest.raises(TokenNotInitializedError):
            await bank.transfer("treasury", "alice", "1")
        await bank.initialize_token()
        await bank.transfer("treasury", "alice", "2")
        assert await bank.get_balance("alice") == Decimal("2.00")


async def test_hung_server_times_out_promptly(own_redis: OwnRedis) -> None:
    settings = Settings(
        storage_mode="redis", redis_url=f"redis://127.0.0.1:{own_redis.port}/0", key_prefix="hung",
        symbol="TARO", initial_supply="100", hold_sweep_interval=0,
    )  # fmt: skip
    async with TokenBank(settings) as bank:
        assert own_redis.proc is not None
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(StorageUnavailableError):
                await asyncio.wait_for(bank.transfer("treasury", "alice", "1"), timeout=15)
            assert time.monotonic() - started < 5
        finally:
            os.kill(own_redis.proc.pid, signal.SIGCONT)
        # the reply of the timed-out call may still arrive: its op applied at most once
        await asyncio.sleep(0.2)
        assert await bank.get_balance("alice") in (Decimal("0.00"), Decimal("1.00"))
