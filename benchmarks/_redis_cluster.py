"""A throwaway local Redis Cluster (and lone servers) on spare loopback ports, for the cluster tests and benchmark.

Each node is ``redis-server --cluster-enabled yes`` without persistence in a temporary directory; the cluster is
formed with ``redis-cli --cluster create`` and is ready once every node reports ``cluster_state:ok``. Everything
is killed and deleted by :meth:`LocalCluster.stop`. The shared Redis on 6379 is never touched.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

NODE_TIMEOUT_MS = 1000
"""``cluster-node-timeout``: how long a silent master may stay silent before its replica takes over (the default,
15 s, would make a failover test wait that long)."""


class ClusterUnavailable(RuntimeError):
    """redis-server or redis-cli is missing."""


def binaries() -> tuple[str, str]:
    """Paths of redis-server and redis-cli. Raises ClusterUnavailable naming what is missing."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    missing = [name for name, path in (("redis-server", server), ("redis-cli", cli)) if path is None]
    if missing:
        raise ClusterUnavailable(f"{' and '.join(missing)} not found on PATH")
    assert server is not None and cli is not None
    return server, cli


def spare_ports(count: int) -> list[int]:
    """``count`` free loopback ports whose cluster bus port (+10000) is free as well."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 > 65535 or port in ports or not _free(port + 10000):
            continue
        ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_answers(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not answer within {seconds} s")


@dataclass
class Node:
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class NodeEntry:
    """One line of ``CLUSTER NODES``: who a node is, its role, whom it replicates and which slots it serves."""

    id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, line: str) -> NodeEntry:
        parts = line.split()
        slots = []
        for part in parts[8:]:
            if not part.startswith("["):  # "[slot->-node]": a slot being migrated
                first, _, last = part.partition("-")
                slots.append((int(first), int(last or first)))
        return cls(
            id=parts[0],
            port=int(parts[1].split("@")[0].rsplit(":", 1)[1]),
            flags=frozenset(parts[2].split(",")),
            master_id=None if parts[3] == "-" else parts[3],
            slots=tuple(slots),
        )

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        """Flagged as failed, or as possibly failed ("fail?") by the node that printed the line."""
        return bool(self.flags & {"fail", "fail?"})


def _replicas_seen(view: list[NodeEntry]) -> int:
    """How many healthy replicas of healthy masters that serve slots ``view`` lists."""
    masters = {entry.id for entry in view if entry.is_master and entry.slots and not entry.failing}
    return sum(1 for entry in view if not entry.is_master and not entry.failing and entry.master_id in masters)


@dataclass
class LocalCluster:
    """``masters`` masters, each with ``replicas_per_master`` replicas, on spare ports (see the module docstring)."""

    masters: int = 3
    replicas_per_master: int = 0
    nodes: list[Node] = field(default_factory=list)
    folder: Path | None = None

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL naming every node as a startup node."""
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    def start(self, *, timeout: float = 30.0) -> LocalCluster:
        server, cli = binaries()
        self.folder = Path(tempfile.mkdtemp(prefix="tb-cluster-"))
        total = self.masters * (1 + self.replicas_per_master)
        self.nodes = [Node(port) for port in spare_ports(total)]
        try:
            for node in self.nodes:
                self._launch(server, node)
            for node in self.nodes:
                _wait_answers(node.port)
            subprocess.run(
                [cli, "--cluster", "create", *(node.address for node in self.nodes),
                 "--cluster-replicas", str(self.replicas_per_master), "--cluster-yes"],
                check=True, capture_output=True, timeout=timeout,
            )  # fmt: skip
            self.wait_settled(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, server: str, node: Node) -> None:
        assert self.folder is not None
        node.proc = subprocess.Popen(
            [server, "--port", str(node.port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", f"nodes-{node.port}.conf", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
             "--repl-diskless-sync-delay", "0", "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def cli(self, port: int, *args: str, timeout: float = 10.0) -> str:
        """One redis-cli command against the node on ``port``; its output."""
        _, cli = binaries()
        done = subprocess.run(
            [cli, "-h", "127.0.0.1", "-p", str(port), *args], check=True, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        return done.stdout

    def live(self) -> list[Node]:
        return [node for node in self.nodes if node.proc is not None and node.proc.poll() is None]

    def wait_settled(self, *, timeout: float = 30.0) -> None:
        """Wait until the cluster is ok, every replica has synced and every node sees every replica. Also after
        the start: on a loaded machine a master that stalls past the node timeout is failed over by the cluster
        itself, and its old master comes back as a replica that must sync first."""
        self.wait_ok(timeout=timeout)
        self.wait_replicas_synced(timeout=timeout)
        self.wait_every_node_sees_every_replica(timeout=timeout)

    def wait_ok(self, *, timeout: float = 30.0) -> float:
        """Wait until every live node reports ``cluster_state:ok`` and agrees on who serves each slot; seconds
        waited. Raises TimeoutError."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                states = [self.cli(node.port, "CLUSTER", "INFO") for node in self.live()]
                owners = {self.slot_owners(node.port) for node in self.live()}
            except subprocess.SubprocessError:
                states, owners = [], set()
            if states and all("cluster_state:ok" in state for state in states) and len(owners) == 1:
                return time.monotonic() - started
            time.sleep(0.05)
        raise TimeoutError(f"the cluster did not reach cluster_state:ok within {timeout} s")

    def wait_replicas_synced(self, *, timeout: float = 30.0) -> None:
        """Wait until every replica has finished its first sync (a replica that never synced will not take over)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = [self.cli(node.port, "INFO", "replication") for node in self.live()]
            replicas = [info for info in infos if "role:slave" in info]
            if len(replicas) == self.masters * self.replicas_per_master and all(
                "master_link_status:up" in info and "master_sync_in_progress:0" in info for info in replicas
            ):
                return
            time.sleep(0.05)
        raise TimeoutError(f"the replicas did not finish their first sync within {timeout} s")

    def view(self, port: int) -> list[NodeEntry]:
        """Every node of the cluster as the node on ``port`` sees it (``CLUSTER NODES``)."""
        return [NodeEntry.parse(line) for line in self.cli(port, "CLUSTER", "NODES").splitlines() if line.strip()]

    def slot_owners(self, port: int) -> tuple[tuple[int, int, int], ...]:
        """(first slot, last slot, master port) of every slot range, as the node on ``port`` sees them."""
        return tuple(
            sorted(
                (*slots, entry.port)
                for entry in self.view(port)
                if entry.is_master and not entry.failing
                for slots in entry.slots
            )
        )

    def master_of_slot(self, slot: int) -> Node:
        """The node serving ``slot`` now (as a live node sees it)."""
        for first, last, port in self.slot_owners(self.live()[0].port):
            if first <= slot <= last:
                return next(node for node in self.nodes if node.port == port)
        raise LookupError(f"slot {slot} is not served")

    def keyslot(self, key: str) -> int:
        return int(self.cli(self.live()[0].port, "CLUSTER", "KEYSLOT", key).strip())

    def replica_of(self, master: Node, *, timeout: float = 10.0) -> Node:
        """A replica of ``master`` that the first live node sees as healthy. Gossip can take a moment to tell
        every node about a replica, and a loaded machine can flag one as failing for a moment: so this waits.
        Raises LookupError."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.view(self.live()[0].port)
            master_id = next((entry.id for entry in view if entry.port == master.port), None)
            for entry in view:
                if entry.master_id == master_id and not entry.is_master and not entry.failing:
                    return next(node for node in self.nodes if node.port == entry.port)
            if time.monotonic() > deadline:
                raise LookupError(f"no live replica of {master.address} within {timeout} s")
            time.sleep(0.05)

    def wait_every_node_sees_every_replica(self, *, timeout: float = 30.0) -> None:
        """Wait until every live node sees each replica as a healthy replica of a master with slots: right after
        ``--cluster create`` a node may still list a replica as an empty master."""
        deadline = time.monotonic() + timeout
        expected = self.masters * self.replicas_per_master
        while time.monotonic() < deadline:
            views = [self.view(node.port) for node in self.live()]
            if all(_replicas_seen(view) == expected for view in views):
                return
            time.sleep(0.05)
        raise TimeoutError(f"the nodes did not agree on the {expected} replicas within {timeout} s")

    def wait_promoted(self, slot: int, old: Node, *, timeout: float = 30.0) -> float:
        """Wait until a node other than ``old`` serves ``slot`` and the cluster is ok again; seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if self.master_of_slot(slot).port != old.port:
                    break
            except (subprocess.SubprocessError, LookupError):
                pass
            time.sleep(0.05)
        else:
            raise TimeoutError(f"no replica took over slot {slot} within {timeout} s")
        self.wait_ok(timeout=max(timeout - (time.monotonic() - started), 1.0))
        return time.monotonic() - started

    def kill(self, node: Node) -> None:
        """SIGKILL one node (no chance to hand anything over)."""
        if node.proc is not None:
            node.proc.kill()
            node.proc.wait(timeout=10)
            node.proc = None

    def restart(self, node: Node) -> None:
        """Start a killed node again on its port with its cluster config: it comes back empty (no persistence) and
        rejoins as a replica of the master that took its slots over."""
        server, _ = binaries()
        self._launch(server, node)
        _wait_answers(node.port)

    def stop(self) -> None:
        for node in self.nodes:
            self.kill(node)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


@dataclass
class LoneRedis:
    """One plain redis-server (no cluster) on a spare port, for side-by-side figures."""

    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    folder: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> LoneRedis:
        server, _ = binaries()
        self.folder = Path(tempfile.mkdtemp(prefix="tb-redis-"))
        self.port = spare_ports(1)[0]
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_answers(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
