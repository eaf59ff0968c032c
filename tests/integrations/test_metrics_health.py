"""``tokenbank.metrics`` (own registry per bank) and ``tokenbank.health`` (bounded probes, store hooks)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal

import httpx
import pytest

from tests.backends import BoundBackend
from tests.integrations.conftest import API_KEY, AUTH, assert_error
from tokenbank import InsufficientBalanceError, StorageUnavailableError, TokenBank
from tokenbank.errors import ConfigurationError
from tokenbank.health import HealthCheck, HealthReport, check_health, worst
from tokenbank.integrations.fastapi import create_app
from tokenbank.metrics import Metrics, metrics_available
from tokenbank.storage.capabilities import HealthChecks


def sample(text: str, line_start: str) -> float:
    """The value of the exposition line that starts with ``line_start``."""
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {line_start!r} in:\n{text}")


def test_each_metrics_has_its_own_registry() -> None:
    first, second = Metrics(symbol="A"), Metrics(symbol="B")  # same metric names: no clash, no global state
    first.observe("transfer", "ok", 0.002)
    first.observe("transfer", "insufficient_balance", 0.001)
    text = first.render().decode()
    assert sample(text, 'tokenbank_operations_total{operation="transfer",outcome="ok"}') == 1
    assert sample(text, 'tokenbank_operation_duration_seconds_count{operation="transfer"}') == 2
    assert 'symbol="A"' in text
    assert "transfer" not in second.render().decode()
    assert first.content_type.startswith("text/plain")


def test_track_records_the_outcome() -> None:
    metrics = Metrics(symbol="T")
    with metrics.track("mint"):
        pass
    with pytest.raises(InsufficientBalanceError), metrics.track("burn"):
        raise InsufficientBalanceError("no")
    with pytest.raises(ValueError), metrics.track("burn"):
        raise ValueError("bug")
    text = metrics.render().decode()
    assert sample(text, 'tokenbank_operations_total{operation="mint",outcome="ok"}') == 1
    assert sample(text, 'tokenbank_operations_total{operation="burn",outcome="insufficient_balance"}') == 1
    assert sample(text, 'tokenbank_operations_total{operation="burn",outcome="internal_error"}') == 1


async def test_supply_gauges_refresh_on_scrape() -> None:
    supply = [Decimal("100.50"), Decimal(40)]

    async def read() -> tuple[Decimal, Decimal]:
        return supply[0], supply[1]

    metrics = Metrics(symbol="T", supply=read)
    assert "tokenbank_total_supply " not in metrics.render().decode()  # nothing read yet
    text = (await metrics.scrape()).decode()
    assert sample(text, "tokenbank_total_supply") == 100.5
    assert sample(text, "tokenbank_circulating_supply") == 40
    supply[0] = Decimal(200)
    assert sample((await metrics.scrape()).decode(), "tokenbank_total_supply") == 200


async def test_failing_supply_read_is_counted_not_raised() -> None:
    async def broken() -> tuple[Decimal, Decimal]:
        raise StorageUnavailableError("down")

    async def slow() -> tuple[Decimal, Decimal]:
        await asyncio.sleep(10)
        raise AssertionError("not reached")

    for reader in (broken, slow):
        metrics = Metrics(symbol="T", supply=reader, supply_timeout=0.05)
        text = (await metrics.scrape()).decode()
        assert "tokenbank_total_supply " not in text
        assert sample(text, "tokenbank_supply_refresh_errors_total") == 1


def test_without_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # makes `import prometheus_client` fail
    with pytest.raises(ConfigurationError, match=r"pip install 'tokenbank\[metrics\]'"):
        Metrics(symbol="T")
    assert not metrics_available()


async def test_metrics_endpoint_counts_every_write(api_backend: BoundBackend) -> None:
    async with TokenBank(api_backend.settings(initial_supply=100)) as bank:
        app = create_app(bank=bank, api_key=API_KEY)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=AUTH) as c:
            body = {"from_user_id": "treasury", "to_user_id": "alice", "amount": "30"}
            assert (await c.post("/transfers", json=body)).status_code == 201
            assert_error(await c.post("/transfers", json={**body, "amount": "500"}), 409, "insufficient_balance")
            assert (await c.post("/mint", json={"to_user_id": "bob", "amount": "1"})).status_code == 201
            text = (await c.get("/metrics")).text
    assert sample(text, 'tokenbank_operations_total{operation="transfer",outcome="ok"}') == 1
    assert sample(text, 'tokenbank_operations_total{operation="transfer",outcome="insufficient_balance"}') == 1
    assert sample(text, 'tokenbank_operations_total{operation="mint",outcome="ok"}') == 1
    assert sample(text, "tokenbank_total_supply") == 101
    assert sample(text, "tokenbank_circulating_supply") == 31


# health ----------------------------------------------------------------------------------------------------
async def test_health_ok(api_bank: TokenBank) -> None:
    report = await check_health(api_bank)
    assert report == HealthReport(report.status, report.checks)
    assert report.status == "ok" and report.ok
    assert [c.name for c in report.checks] == ["storage", "token"]
    assert all(c.latency_ms is not None and c.latency_ms >= 0 for c in report.checks)
    assert report.as_dict()["checks"][1]["detail"].startswith("token ")


async def test_health_down_when_the_store_hangs(api_bank: TokenBank, monkeypatch: pytest.MonkeyPatch) -> None:
    async def hang() -> None:
        await asyncio.sleep(10)

    monkeypatch.setattr(api_bank.storage, "ping", hang)
    report = await check_health(api_bank, time_limit=0.05)
    assert report.status == "down" and not report.ok
    assert report.checks[0].detail == "no answer within 0.05 s"
    assert report.checks[1] == HealthCheck("token", "down", "not checked: the store does not answer")


async def test_health_down_without_token(api_backend: BoundBackend) -> None:
    bank = TokenBank(api_backend.settings())
    await bank.storage.open()  # the schema, but no token
    try:
        report = await check_health(bank)
    finally:
        await bank.close()
    assert report.status == "down"
    assert "is not initialized" in report.checks[1].detail


def declare_health_checks(
    bank: TokenBank, monkeypatch: pytest.MonkeyPatch, checks: Callable[[], Awaitable[list[HealthCheck]]]
) -> None:
    """Make the bank's store one that declares the HealthChecks capability, answering with ``checks``."""
    store = bank.storage

    class Checked(type(store), HealthChecks):  # type: ignore[misc]
        async def health_checks(self) -> list[HealthCheck]:
            return await checks()

    monkeypatch.setattr(store, "__class__", Checked)


async def test_store_health_hooks_can_degrade(api_bank: TokenBank, monkeypatch: pytest.MonkeyPatch) -> None:
    async def lagging() -> list[HealthCheck]:
        return [HealthCheck("sync.lag", "degraded", "backlog 1200 entries", 3.0)]

    declare_health_checks(api_bank, monkeypatch, lagging)
    report = await check_health(api_bank)
    assert report.status == "degraded" and report.ok
    assert report.checks[-1].name == "sync.lag"
    app = create_app(bank=api_bank, api_key=API_KEY)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "degraded"

    async def broken() -> list[HealthCheck]:
        raise RuntimeError("secret://user:pw@host")

    declare_health_checks(api_bank, monkeypatch, broken)
    report = await check_health(api_bank)
    assert report.status == "degraded"
    assert report.checks[-1] == HealthCheck("storage.extra", "degraded", "RuntimeError", report.checks[-1].latency_ms)


async def test_health_endpoint_503_when_down(api_bank: TokenBank, monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse() -> None:
        raise StorageUnavailableError("store unreachable")

    monkeypatch.setattr(api_bank.storage, "ping", refuse)
    app = create_app(bank=api_bank, api_key=API_KEY)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "down"
    assert response.json()["checks"][0]["detail"] == "storage_unavailable: store unreachable"


def test_worst() -> None:
    assert worst([]) == "ok"
    assert worst(["ok", "degraded"]) == "degraded"
    assert worst(["degraded", "down", "ok"]) == "down"
