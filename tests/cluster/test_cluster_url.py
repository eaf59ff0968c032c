"""REDIS_URL for a Redis Cluster: startup nodes, TLS, credentials, database 0 only, typed errors (no server)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection

from tokenbank.errors import ConfigurationError
from tokenbank.storage.redis.connect import is_cluster, is_cluster_url, make_client


def client(url: str) -> Any:
    return make_client(url, pool_size=10, pool_wait=1, socket_timeout=2, connect_timeout=2)


async def test_every_listed_node_is_a_startup_node() -> None:
    cluster = cast(RedisCluster, client("redis+cluster://u:s3cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002/0"))
    try:
        assert is_cluster(cluster)  # type: ignore[arg-type]
        nodes = {(node.host, node.port) for node in cluster.startup_nodes}
        assert nodes == {("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002)}
        kwargs = cluster.get_connection_kwargs()
        assert kwargs["username"] == "u" and kwargs["password"] == "s3cret" and kwargs["decode_responses"]
        max_connections = kwargs["max_connections"]
        assert max_connections is not None and max_connections >= 64
    finally:
        await cluster.aclose()


async def test_tls_and_default_port() -> None:
    cluster = cast(RedisCluster, client("rediss+cluster://cache.internal"))
    try:
        assert [(node.host, node.port) for node in cluster.startup_nodes] == [("cache.internal", 6379)]
        assert cluster.get_connection_kwargs()["connection_class"] is SSLConnection
    finally:
        await cluster.aclose()


def test_plain_urls_are_not_clusters() -> None:
    assert is_cluster_url("redis+cluster://h:1") and is_cluster_url("REDISS+CLUSTER://h:1")
    assert not is_cluster_url("redis://h:1/0") and not is_cluster_url("rediss://h:1/0")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://u:s3cret@h:7000/2", "only database 0"),
        ("redis+cluster://h:port", "port must be a number"),
        ("redis+cluster://", "at least one host:port"),
        ("redis+cluster://:7000", "needs a host"),
    ],
)
def test_bad_cluster_urls_raise_configuration_error_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        client(url)
    assert "REDIS_URL" in str(caught.value) and "s3cret" not in str(caught.value)
