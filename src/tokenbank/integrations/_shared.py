"""One lazily opened blocking bank per process, for the synchronous web frameworks' integrations."""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Mapping

from tokenbank.blocking import TokenBank
from tokenbank.errors import ConfigurationError
from tokenbank.settings import Settings


def settings_from(config: object, where: str) -> Settings:
    """``Settings`` from a dict of its fields (the environment fills the rest). Raises ConfigurationError."""
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise ConfigurationError(f"{where} must be a dict of tokenbank Settings fields")
    return Settings.load(**dict(config))


class LazyBank:
    """Opens a blocking bank on first use, from any thread, once; closes it at interpreter exit. A process
    forked after the bank opened (a preforking server) opens its own: the parent's loop thread is not there."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._bank: TokenBank | None = None
        self._pid = 0
        self._hooked = False

    def get(self) -> TokenBank:
        bank = self._bank
        if bank is not None and self._pid == os.getpid():
            return bank
        with self._lock:
            if self._bank is None or self._pid != os.getpid():
                bank = TokenBank(self._settings())
                try:
                    bank.open()
                except BaseException:
                    bank.close()
                    raise
                self._bank, self._pid = bank, os.getpid()
                if not self._hooked:
                    atexit.register(self.close)
                    self._hooked = True
            return self._bank

    def close(self) -> None:
        """Close the bank if this process opened it; the next :meth:`get` opens a new one."""
        with self._lock:
            bank, self._bank = self._bank, None
            if bank is not None and self._pid == os.getpid():
                bank.close()
