"""A real uvicorn server on a free loopback port, on its own event-loop thread, around an opened bank.

The tests drive it from plain (non-async) code: Playwright's sync API and httpx's sync client talk to it over
HTTP, and :meth:`LiveServer.call` runs a coroutine of the server's bank on the server's loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

from tokenbank import Settings, TokenBank

T = TypeVar("T")
START_TIMEOUT = 20.0


class LiveServer:
    """``with LiveServer(settings, build) as server:`` opens a bank from ``settings``, serves ``build(bank)`` at
    ``server.url`` and, on exit, stops the server, checks the ledger's invariants and closes the bank."""

    def __init__(self, settings: Settings, build: Any) -> None:
        self._settings = settings
        self._build = build
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dashboard-server", daemon=True)
        self.url = ""
        self.bank: TokenBank | None = None

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coroutine`` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        bank = TokenBank(self._settings)
        self.call(bank.open())
        self.bank = bank
        app: FastAPI = self._build(bank)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            app, lifespan="off", log_level="warning", ws="none", http="h11", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._serving = asyncio.run_coroutine_threadsafe(self._server.serve(sockets=[self._socket]), self._loop)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
                raise RuntimeError("uvicorn stopped during startup")
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if hasattr(self, "_server"):
                self._server.should_exit = True
                self._serving.result(START_TIMEOUT)
                self._socket.close()
            if self.bank is not None:
                report = self.call(self.bank.verify())
                assert report.ok, f"verify(): {report}"
        finally:
            if self.bank is not None:
                self.call(self.bank.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT)
            self._loop.close()
