"""Auto-pipelining of the Redis store's plain commands (reads), as ioredis does.

While a round trip is in flight, further commands queue; as soon as it returns, everything queued leaves as
ONE pipeline (no MULTI: independent reads need no atomicity between callers), and each caller gets its own
reply or its own error. An idle client sends a lone command at once, from the caller's own task, so
pipelining never adds latency; under load, many concurrent reads share one round trip.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from tokenbank.storage.redis.errors import translate

Args = tuple[str | int, ...]
Runner = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]
"""Runs one round trip at the store's error boundary (translation, one resend after a dropped connection)."""


@dataclass(slots=True)
class _Queued:
    args: Args
    future: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass(slots=True)
class PipelineStats:
    commands: int = 0
    round_trips: int = 0
    largest: int = 0


class AutoPipeline:
    """Coalesces concurrent plain commands of one client into pipelines (see the module docstring)."""

    def __init__(self, client: Redis, run: Runner, *, max_in_flight: int = 1, max_commands: int = 1000) -> None:
        self._client = client
        self._run = run
        self._max_in_flight = max_in_flight
        self._max_commands = max_commands
        self._queue: deque[_Queued] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = PipelineStats()

    async def execute(self, *args: str | int) -> Any:
        """One command's reply. Raises what the store's error boundary raises for it."""
        self.stats.commands += 1
        if not self._queue and self._in_flight < self._max_in_flight:
            self._in_flight += 1
            self._count(1)
            try:
                return await self._run(lambda: self._client.execute_command(*args))  # type: ignore[no-untyped-call]
            finally:
                self._in_flight -= 1
                if self._queue:
                    self._launch()
        queued = _Queued(args)
        self._queue.append(queued)
        return await queued.future

    def _count(self, size: int) -> None:
        self.stats.round_trips += 1
        self.stats.largest = max(self.stats.largest, size)

    def _launch(self) -> None:
        batch: list[_Queued] = []
        while self._queue and len(batch) < self._max_commands:
            queued = self._queue.popleft()
            if not queued.future.cancelled():
                batch.append(queued)
        if not batch:
            return
        self._in_flight += 1
        self._count(len(batch))
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[_Queued]) -> None:
        async def pipeline() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for queued in batch:
                pipe.execute_command(*queued.args)
            return await pipe.execute(raise_on_error=False)

        try:
            replies = await self._run(pipeline)
        except BaseException as exc:  # the round trip failed: every caller in it sees the store's error
            for queued in batch:
                if queued.future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    queued.future.cancel()
                else:
                    queued.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._in_flight -= 1
            if self._queue:
                self._launch()
        for queued, reply in zip(batch, replies, strict=True):
            if queued.future.done():
                continue
            if isinstance(reply, Exception):  # this command alone failed (e.g. a wrong type)
                queued.future.set_exception(translate(reply))
            else:
                queued.future.set_result(reply)
