"""Shared benchmark helpers: a closed-loop load driver, percentiles, a plain-text table and JSON output.

Backend-neutral on purpose (the Redis benchmarks use it too). Timing uses ``time.perf_counter``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Operation = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one closed-loop run measured: completed operations, wall time and per-operation latencies (ms)."""

    count: int
    seconds: float
    p50_ms: float
    p99_ms: float
    units_per_op: int = 1
    calls: int | None = None  # store calls (statements, scripts) the run made, where the benchmark counts them

    @property
    def tps(self) -> float:
        """Units (transfers) per second: operations x ``units_per_op`` / wall time."""
        return self.count * self.units_per_op / self.seconds if self.seconds > 0 else 0.0

    @property
    def units_per_call(self) -> float | None:
        """Units (transfers) per store call: above 1 where the client batches."""
        return self.count * self.units_per_op / self.calls if self.calls else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tps": round(self.tps, 1)}


def median_run(runs: Sequence[LoadResult]) -> LoadResult:
    """The run with the median throughput (the lower one of the middle two for an even count)."""
    return sorted(runs, key=lambda run: run.tps)[(len(runs) - 1) // 2]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def run_closed_loop(
    operation: Operation,
    concurrency: int,
    *,
    seconds: float | None = None,
    count: int | None = None,
    warmup_seconds: float = 0.0,
    units_per_op: int = 1,
) -> LoadResult:
    """Run ``operation`` back to back in ``concurrency`` tasks, for ``seconds`` or until ``count`` operations
    completed (exactly one of the two), after an unmeasured warm-up. An operation's exception ends the run."""
    if (seconds is None) == (count is None):
        raise ValueError("give exactly one of seconds or count")
    if warmup_seconds > 0:
        await _drive(operation, concurrency, time.perf_counter() + warmup_seconds, None, [])
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds if seconds is not None else math.inf
    await _drive(operation, concurrency, deadline, count, latencies)
    return _result(latencies, time.perf_counter() - started, units_per_op)


async def run_paced(
    operation: Operation, concurrency: int, rate: float, *, seconds: float, warmup_seconds: float = 0.0
) -> LoadResult:
    """Start ``operation`` on a fixed schedule of ``rate`` per second for ``seconds`` (after an unmeasured
    warm-up at the same rate), from up to ``concurrency`` tasks: an operation whose slot has passed starts at
    once, so a store that cannot keep up shows as a lower rate and higher latencies, not as a slower schedule."""
    if warmup_seconds > 0:
        await _drive(operation, concurrency, time.perf_counter() + warmup_seconds, None, [], 1 / rate)
    latencies: list[float] = []
    started = time.perf_counter()
    await _drive(operation, concurrency, started + seconds, None, latencies, 1 / rate)
    return _result(latencies, time.perf_counter() - started, 1)


def _result(latencies: list[float], elapsed: float, units_per_op: int) -> LoadResult:
    return LoadResult(
        count=len(latencies),
        seconds=elapsed,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        units_per_op=units_per_op,
    )


async def _drive(
    operation: Operation,
    concurrency: int,
    deadline: float,
    count: int | None,
    latencies: list[float],
    interval: float = 0.0,
) -> None:
    """Run ``operation`` from ``concurrency`` tasks until ``deadline`` or ``count``; with an ``interval``, the
    n-th operation does not start before ``n * interval`` seconds from now."""
    started = [0]  # operations handed out so far (shared by the workers; asyncio is single-threaded)
    origin = time.perf_counter()

    async def worker() -> None:
        while time.perf_counter() < deadline and (count is None or started[0] < count):
            slot = origin + started[0] * interval
            if slot >= deadline:
                break
            started[0] += 1
            if (wait := slot - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            t0 = time.perf_counter()
            await operation()
            latencies.append(time.perf_counter() - t0)

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A right-aligned plain-text table (first column left-aligned); floats get thousands separators."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(str(h)), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [values[0].ljust(widths[0]), *(v.rjust(w) for v, w in zip(values[1:], widths[1:], strict=True))]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line([str(h) for h in headers]), rule, *(line(row) for row in cells)])


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def environment() -> dict[str, Any]:
    """Where and when a benchmark ran, for its JSON output."""
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }


def busy_warning(threshold: float = 0.5) -> str | None:
    """A warning when something else is using the CPU (1-minute load average above ``threshold``)."""
    load = os.getloadavg()[0]
    if load <= threshold:
        return None
    return f"WARNING: load average {load:.2f} before the run: other work shares the CPU, figures are unreliable"


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")


# CPU of other processes, from /proc (Linux): for figures per operation that count every process involved.
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used so far (0.0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15 of stat(5))


def processes_named(name: str) -> list[int]:
    """Pids of the processes whose command name (``/proc/<pid>/comm``) is ``name``, e.g. ``postgres``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as comm:
                    if comm.read().strip() == name:
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def postgres_cpu(client_pid: int | None = None) -> float:
    """CPU seconds so far of the PostgreSQL processes on this machine: the server's own (postmaster, WAL writer,
    checkpointer, autovacuum...) and its backends; with ``client_pid``, only the backends serving that process's
    connections (a backend's command line names its client's port), so other work on the same server is left out."""
    ports = None if client_pid is None else socket_ports(client_pid)
    total = 0.0
    for pid in processes_named("postgres"):
        if ports is not None:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    client = re.search(rb"\((\d+)\)", cmdline.read())
            except OSError:
                continue
            if client is not None and int(client[1]) not in ports:
                continue
        total += process_cpu_seconds(pid)
    return total


def socket_ports(pid: int) -> set[int]:
    """The local TCP ports of process ``pid``'s sockets: a server's view of its connections (e.g. PostgreSQL's
    ``pg_stat_activity.client_port``) names the process on the other end by them."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            next(rows)
            for row in rows:
                parts = row.split()
                if parts[9] in inodes:
                    ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


# What a benchmark leaves in the shared test services, removed at its end ------------------------------------------
async def drop_schema(dsn: str, schema: str) -> None:
    """Drop a PostgreSQL schema and everything in it (``dsn``: a plain ``postgresql://`` URL)."""
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def delete_keys(redis_url: str, pattern: str) -> None:
    """Delete every Redis key matching ``pattern`` (e.g. ``"{tag:*"``, a benchmark's key prefix)."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=pattern, count=5000)]
        for start in range(0, len(keys), 1000):
            await client.unlink(*keys[start : start + 1000])
    finally:
        await client.aclose()
