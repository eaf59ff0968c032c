"""A PostgreSQL primary and its streaming replica of the tests' own, on spare loopback ports.

Built from the installed server binaries (``initdb``, ``pg_ctl``, ``pg_basebackup``): PostgreSQL's own streaming
replication, exactly what a deployment runs. Run as the ``postgres`` OS user when the tests run as root (the server
refuses root). The shared server on 5432 is never touched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from tests.hybrid.support import free_port, wait_port

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
REPLICA_SCHEMA = "tbreplica"


def find_bin_dir() -> Path | None:
    """The newest installed server's ``bin`` directory (holding initdb, pg_ctl, pg_basebackup), or None."""
    found = [Path(p) for p in glob.glob(PG_BIN_GLOB) if all((Path(p) / b).exists() for b in _BINARIES)]
    if not found:
        on_path = shutil.which("initdb")
        if on_path and all(shutil.which(b) for b in _BINARIES):
            return Path(on_path).parent
        return None
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


_BINARIES = ("initdb", "pg_ctl", "pg_basebackup", "postgres")


def _server_user() -> str | None:
    """The OS user the servers run as: ``postgres`` when we are root (the server refuses root), else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root needs a 'postgres' OS user to run the test servers") from None
    return "postgres"


@dataclass
class Server:
    """One postmaster of the cluster: its data directory and port."""

    name: str
    data: Path
    port: int = field(default_factory=free_port)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"


class ReplicatedCluster:
    """``start()`` builds a primary and a streaming replica of it in a fresh temp directory; ``close()`` stops
    both at once (``-m immediate``) and removes everything."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="tbreplica-"))
        self.primary = Server("primary", self.root / "primary")
        self.replica = Server("replica", self.root / "replica")
        if self.user is not None:
            shutil.chown(self.root, self.user, self.user)

    # commands ------------------------------------------------------------------------------------------------
    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr or done.stdout}")

    def _pg_ctl(self, server: Server, action: str, *extra: str) -> None:
        options = f"-p {server.port} -k {self.root} -c listen_addresses=127.0.0.1"
        log = str(self.root / f"{server.name}.log")
        self._run("pg_ctl", "-D", str(server.data), "-o", options, "-l", log, "-w", "-t", "60", action, *extra)

    # lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> ReplicatedCluster:
        primary = self.primary
        self._run("initdb", "-D", str(primary.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        settings = [
            "wal_level = replica",
            "max_wal_senders = 5",
            "hot_standby = on",
            "max_connections = 60",
            "shared_buffers = 32MB",
            "fsync = off",
            "full_page_writes = off",
            "wal_keep_size = 256MB",
            "max_standby_streaming_delay = 5s",
        ]
        with (primary.data / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")
        with (primary.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 trust\n")
        self._pg_ctl(primary, "start")
        wait_port(primary.port, 30)
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
            "-D", str(self.replica.data), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync",
        )  # fmt: skip
        self.start_replica()
        return self

    def start_replica(self) -> None:
        self._pg_ctl(self.replica, "start")
        wait_port(self.replica.port, 30)
        _wait_streaming(self.primary.dsn)

    def stop_replica(self) -> None:
        self._pg_ctl(self.replica, "stop", "-m", "immediate")

    def replica_running(self) -> bool:
        return (self.replica.data / "postmaster.pid").exists()

    def close(self) -> None:
        for server in (self.replica, self.primary):
            if (server.data / "postmaster.pid").exists():
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self._pg_ctl(server, "stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def _wait_streaming(primary_dsn: str, within: float = 30.0) -> None:
    """Until the primary lists a streaming WAL sender (the replica is connected and following)."""

    async def streaming() -> bool:
        conn = await asyncpg.connect(primary_dsn, timeout=5)
        try:
            return bool(await conn.fetchval("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"))
        finally:
            await conn.close()

    deadline = time.monotonic() + within
    # A fresh thread: this may be called from a test whose event loop is running.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        while time.monotonic() < deadline:
            if pool.submit(asyncio.run, streaming()).result(timeout=within):
                return
            time.sleep(0.05)
    raise TimeoutError("the replica did not start streaming from the primary")
