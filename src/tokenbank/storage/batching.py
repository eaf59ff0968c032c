"""Natural batching (group commit) of store writes.

While store calls are running, further non-atomic calls queue, and queued calls leave together as ONE store
call (one SQL statement, one Lua script) whenever one of the ``max_in_flight`` slots is free. An idle store
sends a lone call at once, so batching never adds latency; under load, per-call overhead (round trip,
commit, script dispatch) is shared by every op in the batch. Ops keep their order and each keeps its own
outcome, exactly as if the calls had been made one after another.

Under load, store and client must work at the same time, not take turns (measured: each was idle half the
time, docs/performance.md). Three rules see to it:
- A store call has two halves, ``send`` (the round trip, returning the store's raw answer) and ``decode``
  (client CPU only). A finished call frees its slot and puts the next batch on the wire before it decodes
  its answer or wakes its callers.
- A slot that is free while other batches run is filled at the end of the event-loop pass, so the callers a
  finished batch wakes resubmit into one batch instead of the first leaving alone.
- A batch takes at most half of the outstanding ops (queued and in flight), so the callers settle into
  groups that alternate — the store works on one while this process handles the other — instead of one
  convoy.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Raw = TypeVar("Raw")
SendFn = Callable[[Sequence[Any], bool], Awaitable[Raw]]
DecodeFn = Callable[[Raw], list[Any]]


def _as_results(raw: Any) -> list[Any]:
    return raw  # type: ignore[no-any-return]


@dataclass(slots=True)
class _Waiter:
    ops: Sequence[Any]
    future: asyncio.Future[list[Any]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass(slots=True)
class BatchStats:
    calls: int = 0
    batches: int = 0
    ops: int = 0
    largest: int = 0


class WriteBatcher(Generic[Raw]):
    """Coalesces concurrent ``apply`` calls of one store. Atomic calls bypass it (they are already one batch).
    ``send(ops, atomic)`` makes one store call; ``decode(raw)`` turns its answer into one result per op (by
    default the answer is the results already)."""

    def __init__(
        self,
        send: SendFn[Raw],
        decode: DecodeFn[Raw] = _as_results,
        *,
        max_in_flight: int = 1,
        max_ops: int = 1000,
    ) -> None:
        self._send = send
        self._decode = decode
        self._max_in_flight = max_in_flight
        self._max_ops = max_ops
        self._queue: deque[_Waiter] = deque()
        self._queued_ops = 0
        self._in_flight = 0
        self._in_flight_ops = 0
        self._launch_pending = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = BatchStats()

    async def apply(self, ops: Sequence[Any], atomic: bool) -> list[Any]:
        if atomic or not ops:
            return self._decode(await self._send(ops, atomic))
        self.stats.calls += 1
        if not self._queue and self._in_flight == 0:
            return await self._apply_alone(ops)
        waiter = _Waiter(ops)
        self._queue.append(waiter)
        self._queued_ops += len(ops)
        if self._in_flight < self._max_in_flight and not self._launch_pending:
            # A free slot while other batches run: launch at the end of this event-loop pass, so every caller
            # woken in this pass (a finished batch's) joins one batch instead of the first leaving alone.
            self._launch_pending = True
            asyncio.get_running_loop().call_soon(self._launch_now)
        return await waiter.future

    def _launch_now(self) -> None:
        self._launch_pending = False
        while self._in_flight < self._max_in_flight and self._launch():
            pass

    async def _apply_alone(self, ops: Sequence[Any]) -> list[Any]:
        """An idle store: the call goes at once from the caller's own task, exactly like the unbatched path
        (no hand-off to a batch task); it counts as in flight, so calls arriving meanwhile queue behind it."""
        self._in_flight += 1
        self._in_flight_ops += len(ops)
        self._count(len(ops))
        try:
            raw = await self._send(ops, False)
        finally:
            launched = self._release(len(ops))
        if launched:
            await asyncio.sleep(0)  # let the next batch go out before this caller decodes
        return self._decode(raw)

    def _count(self, size: int) -> None:
        self.stats.batches += 1
        self.stats.ops += size
        self.stats.largest = max(self.stats.largest, size)

    def _release(self, size: int) -> bool:
        """Free one slot and launch what queued meanwhile; True if a batch was launched. (The finished batch
        still counts as outstanding for the launch: its callers are about to send again.)"""
        self._in_flight -= 1
        launched = bool(self._queue) and self._launch()
        self._in_flight_ops -= size
        return launched

    def _launch(self) -> bool:
        """Send queued calls as one batch of at most half the outstanding ops (queued and in flight), so
        under steady load the callers settle into groups that alternate — the store works on one while this
        process handles another — instead of one convoy that store and client take turns on."""
        limit = min(self._max_ops, max(1, (self._queued_ops + self._in_flight_ops + 1) // 2))
        batch: list[_Waiter] = []
        size = 0
        while self._queue and (not batch or size + len(self._queue[0].ops) <= limit):
            waiter = self._queue.popleft()
            self._queued_ops -= len(waiter.ops)
            if waiter.future.cancelled():
                continue
            batch.append(waiter)
            size += len(waiter.ops)
        if not batch:
            return False
        self._in_flight += 1
        self._in_flight_ops += size
        task = asyncio.get_running_loop().create_task(self._run(batch, size))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, batch: list[_Waiter], size: int) -> None:
        self._count(size)
        ops = batch[0].ops if len(batch) == 1 else [op for waiter in batch for op in waiter.ops]
        try:
            raw = await self._send(ops, False)
        except BaseException as exc:
            try:
                if len(batch) > 1 and isinstance(exc, Exception):
                    # The whole call failed (nothing was applied): retry each caller alone, in this batch's
                    # slot, so only the caller whose ops cause the failure sees it.
                    for waiter in batch:
                        await self._settle_alone(waiter)
            finally:
                _fail(batch, exc)  # every caller not settled yet (all of them, unless retried above)
                self._release(size)
            if not isinstance(exc, Exception):
                raise
            return
        if self._release(size):
            await asyncio.sleep(0)  # the next batch goes out first; this one's decoding and callers follow
        try:
            results = self._decode(raw)
        except Exception as exc:
            _fail(batch, exc)
            return
        start = 0
        for waiter in batch:
            end = start + len(waiter.ops)
            if not waiter.future.done():
                waiter.future.set_result(results[start:end])
            start = end

    async def _settle_alone(self, waiter: _Waiter) -> None:
        """One caller of a failed batch, retried by itself."""
        try:
            result = self._decode(await self._send(waiter.ops, False))
        except Exception as exc:
            _fail([waiter], exc)
            return
        if not waiter.future.done():
            waiter.future.set_result(result)


def _fail(batch: list[_Waiter], exc: BaseException) -> None:
    for waiter in batch:
        if not waiter.future.done():
            waiter.future.set_exception(exc)
