"""What a sync worker is told (SyncOptions) and what it reports about itself (SyncStatus)."""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from tokenbank.storage.hybrid.stream import Backlog

_LAG_SAMPLES = 100_000


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """Tuning of one worker. The defaults suit production; tests shorten the timeouts."""

    batch_size: int = 20_000
    """Most entries per PostgreSQL transaction. Larger batches drain a backlog faster: an account touched by many
    entries of a batch is updated once (measured on a 2-core machine: ~9,000 entries/s at 1,000, 17,000-23,500 at
    5,000, 21,600-27,800 at 20,000). A caught-up worker's batches are far smaller: they hold what arrived meanwhile."""
    block_ms: int = 1000
    """How long one XREADGROUP waits for new entries (also bounds how late audit entries and stop are seen)."""
    claim_idle_ms: int = 15_000
    """Pending entries idle this long belong to a dead worker and are claimed (XAUTOCLAIM)."""
    lease_ms: int = 10_000
    """Lifetime of the active worker's lease; a standby takes over this long after the active one died."""
    strict_attempts: int = 5
    """After this many balance-check failures of one batch, its overdrawing entries are quarantined."""
    status_every: float = 1.0
    consumer: str | None = None


def default_consumer(prefix: str = "app") -> str:
    return f"{prefix}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


@dataclass
class SyncStatus:
    """What the worker knows about itself, for health, metrics and the ``tokenbank sync`` status line."""

    consumer: str
    role: str = "starting"
    """starting, active (holds the lease), standby, or stopped."""
    synced: int = 0
    """Entries this worker wrote into PostgreSQL for the first time."""
    delivered: int = 0
    duplicates: int = 0
    conflicts: int = 0
    batches: int = 0
    errors: int = 0
    last_error: str | None = None
    last_synced_created_at: datetime | None = None
    backlog: Backlog | None = None
    lag_samples: deque[float] = field(default_factory=lambda: deque(maxlen=_LAG_SAMPLES))
    """Seconds from each entry's commit in Redis to its commit in PostgreSQL (the newest ones)."""
    _rate: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))

    def lag_percentile(self, q: float) -> float | None:
        if not self.lag_samples:
            return None
        ordered = sorted(self.lag_samples)
        return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * q / 100))]

    def rate(self) -> float:
        """Entries per second synced over the last few seconds."""
        if len(self._rate) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._rate[0], self._rate[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def tick(self) -> None:
        now = time.monotonic()
        self._rate.append((now, self.synced))
        while len(self._rate) > 2 and now - self._rate[0][0] > 5.0:
            self._rate.popleft()
