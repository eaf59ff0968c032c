"""One OpenTelemetry span per public operation of the bank, with store, token, outcome and batch size."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tests.backends import BoundBackend, by_name, params
from tokenbank import InsufficientBalanceError, TokenBank, TransferRequest

STORE = {"sqlite": "sqlite", "postgres": "postgres", "redis": "redis"}


@pytest.fixture(params=params(by_name(*STORE)))
def traced_backend(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    """SQLite, PostgreSQL and Redis (the servers fail under CI=true when they do not answer)."""
    from tests.backends import Backend, Scope

    backend: Backend = request.param
    return backend.bind(Scope(tmp_path))


def _only(exporter: InMemorySpanExporter, name: str):  # type: ignore[no-untyped-def]
    found = [span for span in exporter.get_finished_spans() if span.name == name]
    assert len(found) == 1, [span.name for span in exporter.get_finished_spans()]
    return found[0]


async def test_transfer_span(traced_backend: BoundBackend, spans: InMemorySpanExporter) -> None:
    settings = traced_backend.settings(initial_supply=100)
    async with TokenBank(settings) as bank:
        spans.clear()
        await bank.transfer("treasury", "alice", "2.50")
    span = _only(spans, "tokenbank.transfer")
    attributes = dict(span.attributes or {})
    assert attributes == {
        "tokenbank.operation": "transfer",
        "tokenbank.store": STORE[traced_backend.name],
        "tokenbank.token": settings.symbol,
        "tokenbank.outcome": "ok",
        "tokenbank.batch_size": 1,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert span.instrumentation_scope is not None and span.instrumentation_scope.name == "tokenbank"


async def test_refusal_span(traced_backend: BoundBackend, spans: InMemorySpanExporter) -> None:
    async with TokenBank(traced_backend.settings(initial_supply=100)) as bank:
        spans.clear()
        with pytest.raises(InsufficientBalanceError):
            await bank.transfer("alice-7f3", "bob-9c2", "5")
    span = _only(spans, "tokenbank.transfer")
    assert span.attributes is not None
    assert span.attributes["tokenbank.outcome"] == "insufficient_balance"
    assert span.attributes["error.type"] == "InsufficientBalanceError"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "insufficient_balance"
    # No account id anywhere on the span (attributes, status, events).
    text = repr((dict(span.attributes), span.status.description, [e.attributes for e in span.events]))
    assert "alice-7f3" not in text and "bob-9c2" not in text


async def test_batch_span(traced_backend: BoundBackend, spans: InMemorySpanExporter) -> None:
    async with TokenBank(traced_backend.settings(initial_supply=100)) as bank:
        spans.clear()
        requests = [TransferRequest("treasury", f"u{i}", "1") for i in range(3)]
        results = await bank.transfer_many([*requests, TransferRequest("nobody", "u9", "1")])
    assert [r.ok for r in results] == [True, True, True, False]
    span = _only(spans, "tokenbank.transfer_many")
    assert span.attributes is not None
    assert span.attributes["tokenbank.batch_size"] == 4
    assert span.attributes["tokenbank.outcome"] == "ok"  # an item's refusal is in its result, not an error


async def test_every_public_operation_has_a_span(spans: InMemorySpanExporter, tmp_path: object) -> None:
    memory = "sqlite+aiosqlite:///:memory:"
    async with TokenBank(database_url=memory, initial_supply=100, hold_sweep_interval=0) as bank:
        spans.clear()
        await bank.mint("alice", "5")
        await bank.burn("alice", "1")
        hold = await bank.hold("alice", "bob", "2", expires_in=60)
        await bank.capture(hold.id)
        other = await bank.hold("alice", "bob", "1", expires_in=60)
        await bank.void(other.id)
        tx = await bank.transfer("alice", "bob", "1")
        await bank.reverse(tx.id, reason="test")
        await bank.get_balance("alice")
        await bank.get_top_holders()
    names = [span.name.removeprefix("tokenbank.") for span in spans.get_finished_spans()]
    assert names[:10] == [
        "mint", "burn", "hold", "capture", "hold", "void", "transfer", "reverse", "get_balance", "get_top_holders",
    ]  # fmt: skip
    reads = [s for s in spans.get_finished_spans() if s.name == "tokenbank.get_balance"]
    assert reads[0].attributes is not None and "tokenbank.batch_size" not in reads[0].attributes


async def test_no_provider_no_spans(tmp_path: object) -> None:
    from opentelemetry import trace

    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert hasattr(TokenBank.transfer, "__wrapped__")  # instrumented: the extra is installed here
    async with TokenBank(database_url="sqlite+aiosqlite:///:memory:", initial_supply=10, hold_sweep_interval=0) as bank:
        await bank.transfer("treasury", "alice", "1")
        assert trace.get_current_span() is trace.INVALID_SPAN
