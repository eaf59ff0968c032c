"""Helpers of the hybrid tests: both stores read account by account, own servers, a cuttable TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import redis
import sqlalchemy as sa

from tokenbank import TokenBank, TransferRequest
from tokenbank.storage.hybrid import stream
from tokenbank.storage.hybrid.backend import HybridStorage
from tokenbank.storage.hybrid.reconcile import reconcile
from tokenbank.storage.hybrid.reports import ReconcileReport
from tokenbank.storage.sql.schema import accounts, tokens, transactions

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else "python"


def store_of(bank: TokenBank) -> HybridStorage:
    store = bank.storage
    assert isinstance(store, HybridStorage)
    return store


async def redis_accounts(store: HybridStorage) -> dict[str, tuple[int, int]]:
    keys, client = store.redis.keys, store.redis.client
    # decode_responses=True: fields and values are str (redis-py's annotations cannot say so).
    bal = cast("dict[str, str]", await client.hgetall(keys.bal))
    held = cast("dict[str, str]", await client.hgetall(keys.held))
    return {u: (int(bal.get(u, 0)), int(held.get(u, 0))) for u in set(bal) | set(held)}


async def postgres_accounts(store: HybridStorage) -> dict[str, tuple[int, int]]:
    stmt = sa.select(accounts.c.user_id, accounts.c.balance, accounts.c.held).where(
        accounts.c.token == store.sql.token, sa.or_(accounts.c.balance != 0, accounts.c.held != 0)
    )
    rows = await store.sql.run_sync(lambda conn: conn.execute(stmt).all())
    return {row.user_id: (int(row.balance), int(row.held)) for row in rows}


async def postgres_ids(store: HybridStorage) -> dict[str, int]:
    stmt = sa.select(transactions.c.id, transactions.c.seq).where(transactions.c.token == store.sql.token)
    rows = await store.sql.run_sync(lambda conn: conn.execute(stmt).all())
    return {row.id: int(row.seq) for row in rows}


async def postgres_supply(store: HybridStorage) -> int:
    stmt = sa.select(tokens.c.total_supply).where(tokens.c.symbol == store.sql.token)
    supply = await store.sql.run_sync(lambda conn: conn.scalar(stmt))
    assert supply is not None
    return int(supply)


async def drain(store: HybridStorage, within: float = 60.0) -> None:
    """The stream's entries, then the audit entries (account controls, token changes) written before the call
    are in PostgreSQL: the sync copies audit entries on their own, so an empty stream does not mean they are."""
    deadline = time.monotonic() + within
    assert await stream.wait_drained(store.redis.client, store.redis.keys, within), "sync backlog did not drain"
    top = int(await store.redis.client.get(store.redis.keys.auditseq) or 0)
    query = sa.text("SELECT audit_synced FROM tb_sync_state WHERE token = :token").bindparams(token=store.sql.token)
    while int(await store.sql.run_sync(lambda conn: conn.scalar(query)) or 0) < top:
        assert time.monotonic() < deadline, "audit entries did not reach PostgreSQL"
        await asyncio.sleep(0.02)


async def assert_stores_equal(store: HybridStorage) -> ReconcileReport:
    """Drained, then PostgreSQL equals Redis account by account, and every transaction id is on both sides."""
    await drain(store)
    assert await postgres_accounts(store) == await redis_accounts(store)
    report = await reconcile(store, full=True)
    assert report.ok, report
    redis_ids = set(await store.redis.client.hkeys(store.redis.keys.tx))
    assert set(await postgres_ids(store)) == redis_ids
    return report


def two_of(rng: random.Random, users: Sequence[str]) -> tuple[str, str]:
    """Two distinct users, as ``rng.sample(users, 2)`` draws them."""
    first, second = rng.sample(users, 2)
    return first, second


async def fund(bank: TokenBank, users: Sequence[str], amount: int) -> None:
    await bank.mint("treasury", amount * len(users))
    results = await bank.transfer_many([TransferRequest("treasury", u, amount) for u in users])
    assert all(r.ok for r in results)


# own servers -------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on port {port}")


class OwnRedis:
    """A redis-server of the test's own (AOF, ``appendfsync`` everysec by default) on a free port."""

    def __init__(self, directory: Path, port: int | None = None, appendfsync: str = "everysec") -> None:
        self.directory = directory
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def aof_dir(self) -> Path:
        return self.directory / "appendonlydir"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        args = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "", "--aof-load-truncated", "yes",
            "--auto-aof-rewrite-percentage", "0", "--aof-use-rdb-preamble", "no", "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args)
        wait_port(self.port)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        try:
            while True:  # up and done loading its AOF
                try:
                    client.ping()
                    return
                except redis.exceptions.BusyLoadingError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def incr_file(self) -> Path:
        [incr] = sorted(self.aof_dir.glob("*.incr.aof"))
        return incr

    def wipe(self) -> None:
        shutil.rmtree(self.aof_dir, ignore_errors=True)


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``python -m tokenbank sync`` in its own process (output discarded: its status line is for people)."""
    return subprocess.Popen(
        [PYTHON, "-m", "tokenbank", "sync", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class TcpProxy:
    """A loopback TCP proxy to ``target`` that can be cut: open connections are dropped and new ones are
    closed at once (what a dead database looks like to a client), until :meth:`restore`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.cut_off = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self.cut_off = True
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    def restore(self) -> None:
        self.cut_off = False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def summary(report: ReconcileReport) -> dict[str, Any]:
    return {
        "drifted": [d.user_id for d in report.drifted],
        "missing_in_redis": len(report.missing_in_redis),
        "missing_in_postgres": len(report.missing_in_postgres),
        "supply_drift": report.supply_drift,
    }
