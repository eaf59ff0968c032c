"""A real OpenTelemetry SDK tracer provider, in memory, for one test (the API's globals reset around it)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once


def _set_provider(provider: trace.TracerProvider | None) -> None:
    # The API lets a process set its provider once; OpenTelemetry's own test utilities reset it like this.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = provider


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans finished during the test; no provider before or after it (other tests run without tracing)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _set_provider(provider)
    try:
        yield exporter
    finally:
        _set_provider(None)
        provider.shutdown()


@pytest.fixture
def tokenbank_logger() -> Iterator[logging.Logger]:
    """The ``tokenbank`` logger, its handlers, level and propagation restored after the test."""
    logger = logging.getLogger("tokenbank")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        yield logger
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        handlers, level, propagate = saved
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
