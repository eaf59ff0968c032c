"""Balance event callbacks of the blocking API, run on a thread of their own rather than on the bank's loop."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable

from tokenbank.events import BalanceUpdate

logger = logging.getLogger("tokenbank")

SyncBalanceCallback = Callable[[BalanceUpdate], object]
"""A balance event callback of the blocking API: called on the bank's event thread, in commit order."""


class EventThread:
    """Runs balance event callbacks one at a time, in order, on a thread of their own: a slow callback never
    stalls the bank's loop, and a callback may call the blocking bank itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._relays: dict[tuple[str, SyncBalanceCallback], list[Callable[[BalanceUpdate], None]]] = {}

    def relay(self, user_id: str, callback: SyncBalanceCallback) -> Callable[[BalanceUpdate], None]:
        """The loop-side callback handing each update over to ``callback`` on the event thread."""
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tokenbank-events")
            executor = self._executor

        def hand_over(update: BalanceUpdate) -> None:
            try:
                executor.submit(_deliver, callback, update)
            except RuntimeError:  # the bank is closing: nobody is left to tell
                logger.debug("balance event dropped at close", extra={"user_id": update.user_id})

        with self._lock:
            self._relays.setdefault((user_id, callback), []).append(hand_over)
        return hand_over

    def forget(
        self, user_id: str, callback: SyncBalanceCallback | None = None
    ) -> list[Callable[[BalanceUpdate], None]]:
        """Drop and return the relays of ``callback`` on the account (of every callback, if None)."""
        with self._lock:
            keys = [key for key in self._relays if key[0] == user_id and callback in (None, key[1])]
            return [relay for key in keys for relay in self._relays.pop(key)]

    def discard(self, user_id: str, callback: SyncBalanceCallback, relay: Callable[[BalanceUpdate], None]) -> None:
        with self._lock:
            relays = self._relays.get((user_id, callback), [])
            if relay in relays:
                relays.remove(relay)

    def shutdown(self) -> None:
        """Stop the event thread once the callbacks already handed over have run."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            # Closing the bank from inside a callback must not wait for that very callback.
            executor.shutdown(wait=not threading.current_thread().name.startswith("tokenbank-events"))


def _deliver(callback: SyncBalanceCallback, update: BalanceUpdate) -> None:
    try:
        callback(update)
    except Exception:
        logger.exception("balance event callback failed", extra={"user_id": update.user_id})
