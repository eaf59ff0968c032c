"""What the webhook fault tests share: a receiver that can be down, flaky or slow, the worker as a real process,
and the checks every delivery must pass.

The receiver is ``http.server`` on a port it binds at once but listens on only when :meth:`FaultReceiver.up` is
called: until then a connection to it is refused, exactly as for a receiver that is not running. Signatures are
checked with :func:`tests.webhooks.receiver.signature_is_valid`, written from the Standard Webhooks text and
independent of tokenbank's signing code.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.webhooks.receiver import signature_is_valid
from tokenbank import Settings, TokenBank

WORKER_OPTIONS = (
    "--idle-seconds", "0.02", "--lease-seconds", "1", "--retry-base-seconds", "0.02", "--retry-cap-seconds", "0.5",
)  # fmt: skip
"""Short sleeps and retry delays, so a test sees many retries in seconds (the defaults are 5 s doubling to 1 h)."""

TIMESTAMP_TOLERANCE = 300
"""Standard Webhooks: receivers should refuse a timestamp more than five minutes away from their clock."""


@dataclass(frozen=True)
class Hit:
    """One request the receiver got, in arrival order."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    received_at: float

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class FaultReceiver:
    """A local HTTP receiver: refused connections until :meth:`up`; then a 500 for every ``fail_every``-th call
    (0: never) and a sleep drawn from ``delay`` seconds before each answer."""

    fail_every: int = 0
    delay: tuple[float, float] = (0.0, 0.0)
    hits: list[Hit] = field(default_factory=list)
    in_flight: int = 0
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.calls += 1
                    failing = receiver.fail_every and receiver.calls % receiver.fail_every == 0
                    status = 500 if failing else 200
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.hits.append(Hit(self.path, headers, body, status, time.monotonic()))
                    receiver.in_flight += 1
                try:
                    if receiver.delay[1] > 0:
                        time.sleep(random.uniform(*receiver.delay))
                    self.send_response(status)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the worker was killed while we slept: nobody reads the answer
                    pass
                finally:
                    with receiver.lock:
                        receiver.in_flight -= 1

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self._server.server_bind()  # the port is ours; without listen() a connection to it is refused

    def url(self, path: str = "/hooks") -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def up(self) -> None:
        """Start listening and answering."""
        assert self._server is not None and self._thread is None
        self._server.server_activate()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._server is None:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
        self._server = None

    def on(self, path: str) -> list[Hit]:
        with self.lock:
            return [hit for hit in self.hits if hit.path == path]


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment a ``tokenbank worker`` process needs to serve the same token as ``settings``."""
    env = {
        **os.environ,
        "TOKEN_STORAGE_MODE": settings.storage_mode.value,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "TOKEN_KEY_PREFIX": settings.key_prefix,
        "TOKEN_SYMBOL": settings.symbol,
        "TOKEN_HOLD_SWEEP_INTERVAL": "0",
    }
    if settings.database_schema:
        env["TOKEN_DATABASE_SCHEMA"] = settings.database_schema
    return env


async def start_worker(settings: Settings, log: Path) -> asyncio.subprocess.Process:
    """``python -m tokenbank worker`` with the test's short delays; its output is appended to ``log`` (a pipe
    nobody reads would fill up with retry warnings and stall the worker)."""
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tokenbank", "worker", *WORKER_OPTIONS,
            env=worker_env(settings), stdout=out, stderr=out,
        )  # fmt: skip


async def stop_worker(process: asyncio.subprocess.Process) -> int:
    """SIGTERM, as a service manager stops it; its exit status."""
    if process.returncode is None:
        process.terminate()
    return await asyncio.wait_for(process.wait(), 30)


def tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


@dataclass(frozen=True)
class Outcome:
    """What one endpoint's receiver saw."""

    requests: int
    refused_by_receiver: int
    """Requests the receiver answered with a 500 on purpose."""
    duplicates: int
    """Acknowledged requests of an event that had been acknowledged before (at-least-once)."""


def check_received(hits: list[Hit], secret: str, expected: list[int]) -> Outcome:
    """Every request correctly signed with a fresh timestamp; the seqs arrive in non-decreasing order (an
    endpoint's next event goes out only after the previous one was acknowledged, so a retry or a duplicate
    can only repeat the latest seq); every expected seq acknowledged, nothing else; the same ``webhook-id``
    on every request of one event."""
    now = time.time()
    bad = [h.headers.get("webhook-id") for h in hits if not signature_is_valid(secret, h.headers, h.body)]
    assert not bad, f"{len(bad)} requests with an invalid signature, e.g. {bad[:3]}"
    assert all(abs(now - int(h.headers["webhook-timestamp"])) < TIMESTAMP_TOLERANCE for h in hits)
    assert all(h.event["type"] == "transaction.created" for h in hits)
    seqs = [int(h.event["data"]["seq"]) for h in hits]
    backwards = [(a, b) for a, b in itertools.pairwise(seqs) if b < a]
    assert not backwards, f"out of seq order: {backwards[:5]}"
    ids: dict[int, set[str]] = {}
    for seq, hit in zip(seqs, hits, strict=True):
        ids.setdefault(seq, set()).add(hit.headers["webhook-id"])
    assert all(len(names) == 1 for names in ids.values()), "an event changed its webhook-id between attempts"
    acknowledged = [seq for seq, hit in zip(seqs, hits, strict=True) if hit.status == 200]
    first = list(dict.fromkeys(acknowledged))
    assert first == sorted(set(first)), "first acknowledgements not strictly increasing"
    missing = sorted(set(expected) - set(first))
    assert not missing, f"{len(missing)} events never acknowledged, e.g. {missing[:10]}"
    assert first == expected, f"unexpected events: {sorted(set(first) - set(expected))[:10]}"
    copies = Counter(acknowledged)
    return Outcome(len(hits), sum(h.status != 200 for h in hits), sum(n - 1 for n in copies.values()))


async def wait_delivered(
    bank: TokenBank, endpoint_ids: list[str], count: int, process: asyncio.subprocess.Process, log: Path, within: float
) -> None:
    """Until the delivery log shows ``count`` delivered deliveries per endpoint (the worker records an
    acknowledgement right after the receiver's answer)."""
    deadline = time.monotonic() + within
    while True:
        done = [
            sum(d.status == "delivered" for d in await bank.webhooks.deliveries(e, limit=10_000)) for e in endpoint_ids
        ]
        if all(n == count for n in done):
            return
        assert process.returncode is None, f"the worker exited ({process.returncode}):\n{tail(log)}"
        assert time.monotonic() < deadline, f"delivered {done} of {count} within {within} s:\n{tail(log)}"
        await asyncio.sleep(0.25)


async def check_log(bank: TokenBank, endpoint_id: str, expected: list[int]) -> list[Any]:
    """The delivery log agrees: one delivery per event, every one delivered with a 200, no dead letter."""
    deliveries = await bank.webhooks.deliveries(endpoint_id, limit=10_000)
    assert sorted(d.seq for d in deliveries) == expected
    assert all(d.status == "delivered" and d.response_status == 200 for d in deliveries)
    assert await bank.webhooks.deliveries(endpoint_id, failed=True) == []
    return deliveries
