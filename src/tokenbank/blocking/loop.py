"""The event loop a blocking bank runs its async twin on: a daemon thread, shareable by several banks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_STOP_WAIT = 10.0


class LoopThread:
    """An event loop running forever in a daemon thread; :meth:`run` calls into it from any other thread.

    Daemon, so a bank nobody closed never keeps the interpreter from exiting (a thread pool's worker would be
    joined at exit, before ``atexit`` handlers get the chance to close it)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._closed = False
        self._lock = threading.Lock()
        self._banks = 0
        self._thread = threading.Thread(target=self._serve, name="tokenbank-loop", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def run(self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` on the loop and wait for the result; its exception is raised here.
        Raises RuntimeError once stopped, or when called from the loop's own thread (that would wait for itself
        forever)."""

        async def call() -> R:
            return await fn(*args, **kwargs)

        return self._submit(call)

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the plain function ``fn`` on the loop (for what must happen on the loop's thread) and wait."""

        async def call() -> R:
            return fn(*args, **kwargs)

        return self._submit(call)

    def _submit(self, call: Callable[[], Coroutine[Any, Any, R]]) -> R:
        if self._closed:
            raise RuntimeError("this blocking TokenBank is closed")
        if threading.current_thread() is self._thread:
            raise RuntimeError("a blocking TokenBank method was called on its own event loop thread")
        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # KeyboardInterrupt while waiting: do not leave the call running unseen
            raise

    def enter(self) -> BankLoop | None:
        """One more bank's handle on this loop; None once the loop has stopped (its last bank closed)."""
        with self._lock:
            if self._closed:
                return None
            self._banks += 1
        return BankLoop(self)

    def leave(self) -> None:
        """A bank is done with the loop: the last one stops it."""
        with self._lock:
            self._banks -= 1
            # Decided under the lock, so no bank can enter a loop that is about to stop.
            if self._banks > 0 or self._closed:
                return
            self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(_STOP_WAIT)


class BankLoop:
    """One blocking bank's use of a loop thread, which other banks may share (``share_loop_with``): each bank
    closes on its own, and the loop stops when the last of them closes."""

    def __init__(self, thread: LoopThread) -> None:
        self.thread = thread
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed or self.thread.closed

    def run(self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """The loop thread's ``run``; also RuntimeError once this bank is closed."""
        self._check()
        return self.thread.run(fn, *args, **kwargs)

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """The loop thread's ``call``; also RuntimeError once this bank is closed."""
        self._check()
        return self.thread.call(fn, *args, **kwargs)

    def _check(self) -> None:
        if self._closed:
            raise RuntimeError("this blocking TokenBank is closed")

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.thread.leave()
