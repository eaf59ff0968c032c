"""Clients for REDIS_URL: one Redis server (``redis://``, ``rediss://``) or a Redis Cluster (``redis+cluster://``).

``redis+cluster://[user:password@]host:port[,host:port...][/0][?options]`` (``rediss+cluster://`` for TLS) names
startup nodes of a cluster; redis-py's cluster client learns the rest of the cluster from them and sends each
command to the master serving its key's slot. Every key of a token carries the token's hash tag, so each script
and pipeline of the store goes to one node, and tokens spread over the masters by their tag.

Neither client resends on its own (a blind resend of a write could apply it twice); the store decides what may
be sent again. A cluster client follows MOVED and ASK redirects itself (they resend nothing that ran) and, after
a connection error, refreshes its map of the cluster before the next command, which is how it finds a replica
promoted in place of a dead master. The cluster client's connection pools (one per node) do not queue: past
:func:`cluster_connections` connections to one node, a call fails at once with StorageUnavailableError.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import unquote

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tokenbank.errors import ConfigurationError

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""Cluster URL scheme -> the scheme of one node's URL."""

_PER_NODE_FLOOR = 64


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://`` or ``rediss+cluster://``)."""
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def is_cluster(client: Redis) -> bool:
    """Whether ``client`` (typed as a plain client everywhere, see :func:`make_client`) is a cluster client."""
    return isinstance(client, RedisCluster)


def cluster_connections(pool_size: int) -> int:
    """Connections a cluster client may open to each node (TOKEN_POOL_SIZE, at least 64: its pools never wait)."""
    return max(pool_size, _PER_NODE_FLOOR)


def make_client(
    url: str,
    *,
    pool_size: int,
    pool_wait: float,
    socket_timeout: float | None,
    connect_timeout: float,
) -> Redis:
    """A client for ``url``: a plain one over a blocking pool of ``pool_size`` connections (callers wait up to
    ``pool_wait`` seconds for one), or a cluster client. Raises ConfigurationError for a malformed URL, naming
    REDIS_URL (never repeating the URL: it may hold a password).

    A cluster client is returned typed as :class:`redis.asyncio.Redis`: it offers the same command methods for
    keys of one slot, which is all the store sends; the few places that differ (closing, server INFO) ask
    :func:`is_cluster`."""
    common: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "socket_keepalive": True,
        "decode_responses": True,
        "retry": Retry(NoBackoff(), 0),
    }
    if is_cluster_url(url):
        return cast(Redis, _cluster(url, max_connections=cluster_connections(pool_size), **common))
    try:
        pool = BlockingConnectionPool.from_url(url, max_connections=pool_size, timeout=pool_wait, **common)
    except ValueError as exc:  # a malformed URL; redis-py's message does not repeat it (no password leaks)
        raise ConfigurationError(f"REDIS_URL: {exc}") from None
    return Redis(connection_pool=pool)


def _cluster(url: str, **options: Any) -> RedisCluster:
    scheme, _, rest = url.partition("://")
    location, slash, tail = rest.partition("/")
    if not slash:
        location, _, query = location.partition("?")
        tail = "?" + query if query else ""
    userinfo, at, hosts = location.rpartition("@")
    nodes = [_node(part) for part in hosts.split(",") if part.strip()]
    if not nodes:
        raise ConfigurationError("REDIS_URL: a redis+cluster:// URL needs at least one host:port")
    first = f"{nodes[0][0]}:{nodes[0][1]}" if ":" not in nodes[0][0] else f"[{nodes[0][0]}]:{nodes[0][1]}"
    single = f"{CLUSTER_SCHEMES[scheme.lower()]}://{userinfo}{at}{first}/{tail}"
    try:
        parsed: dict[str, Any] = dict(parse_url(single))
    except ValueError as exc:
        raise ConfigurationError(f"REDIS_URL: {exc}") from None
    db = parsed.pop("db", 0)
    if db:
        raise ConfigurationError(f"REDIS_URL: a Redis Cluster has only database 0, not {db}")
    parsed.pop("host", None)
    parsed.pop("port", None)
    if parsed.pop("connection_class", None) is SSLConnection:
        parsed["ssl"] = True
    startup = [ClusterNode(host, port) for host, port in nodes]
    try:
        return RedisCluster(startup_nodes=startup, **{**parsed, **options})
    except TypeError as exc:  # an option of the query string the cluster client does not take
        raise ConfigurationError(f"REDIS_URL: {exc}") from None


def _node(part: str) -> tuple[str, int]:
    text = unquote(part.strip())
    if text.startswith("["):  # [IPv6]:port
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ConfigurationError("REDIS_URL: every node of a redis+cluster:// URL needs a host")
    if port and not port.isdigit():
        raise ConfigurationError("REDIS_URL: a node's port must be a number")
    return host, int(port or 6379)


async def drop_idle_connections(client: Redis) -> None:
    """Close the idle pooled connections (they may point at a dead server); in-use ones finish first."""
    if is_cluster(client):
        for node in cast(RedisCluster, client).get_nodes():
            await node.disconnect_free_connections()
    else:
        await client.connection_pool.disconnect(inuse_connections=False)


async def close_client(client: Redis) -> None:
    """Close ``client`` and every connection it opened."""
    await client.aclose()
    if not is_cluster(client):
        await client.connection_pool.disconnect()


async def server_run_id(client: Redis, key: str) -> str:
    """The run id of the server that holds ``key`` (on a cluster, the master serving its slot: it changes when a
    replica takes over, which may have lost writes, as a restart does)."""
    if is_cluster(client):
        cluster = cast(RedisCluster, client)
        node = cluster.get_node_from_key(key)
        info = await cluster.info("server", target_nodes=node)
    else:
        info = await client.info("server")
    return str(info["run_id"])
