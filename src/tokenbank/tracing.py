"""OpenTelemetry spans of the bank's public operations (the ``otel`` extra); without it, nothing at all.

:func:`instrument` wraps every public coroutine method of a class once, at import, and only when
``opentelemetry-api`` is installed: without it the class is left untouched (no wrapper, no import error). With
it, a call checks whether a tracer provider is configured (one ``isinstance``) and, if none is, runs the method
as it is. Span ``tokenbank.<operation>`` carries::

    tokenbank.operation    the method's name (transfer, get_balance...)
    tokenbank.store        sqlite, postgres, sql (another SQL database), redis or hybrid
    tokenbank.token        the token symbol
    tokenbank.outcome      "ok", the error's code (insufficient_balance...), "error" or "cancelled"
    tokenbank.batch_size   the ops the operation sent to the store (writes), set by :func:`note_batch`

A failure sets the span's status to ERROR with the error code and ``error.type`` to the exception's class. No
account id, amount, metadata or error message goes on a span: a message can name accounts, and traces often
leave the application for a third-party backend.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from tokenbank._version import __version__
from tokenbank.errors import TokenBankError
from tokenbank.settings import Settings, StorageMode

if TYPE_CHECKING:
    from opentelemetry import trace
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["instrument", "note_batch", "otel_available", "store_name"]

STORE = "tokenbank.store"
SYMBOL = "tokenbank.token"
OPERATION = "tokenbank.operation"
OUTCOME = "tokenbank.outcome"
BATCH_SIZE = "tokenbank.batch_size"


class HasSettings(Protocol):
    @property
    def settings(self) -> Settings: ...


def otel_available() -> bool:
    """Whether the ``otel`` extra (opentelemetry-api) is installed."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("opentelemetry", "opentelemetry.trace"))
    except (ImportError, ValueError):  # a blocked or half-installed package
        return False


def store_name(settings: Settings) -> str:
    """The store an operation runs on, for the ``tokenbank.store`` attribute."""
    if settings.storage_mode is not StorageMode.SQL:
        return settings.storage_mode.value
    scheme = settings.database_url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme == "sqlite":
        return "sqlite"
    return "postgres" if scheme in ("postgresql", "postgres") else "sql"


def note_batch(size: int) -> None:
    """Put the number of ops sent to the store on the current span (a no-op without a recording span)."""
    _note_batch(size)


def _no_batch(size: int) -> None:
    return None


_note_batch: Callable[[int], None] = _no_batch


def instrument(cls: type[HasSettings]) -> None:
    """Wrap every public coroutine method of ``cls`` in a span, if opentelemetry-api is installed."""
    if not otel_available():
        return
    global _note_batch
    _note_batch = _note_batch_on_span
    for name, fn in list(vars(cls).items()):
        if not name.startswith("_") and inspect.iscoroutinefunction(fn):
            setattr(cls, name, _traced(name, fn))


_cache: tuple[TracerProvider, Tracer] | None = None


def _tracer() -> Tracer | None:
    """The tokenbank tracer of the configured provider; None while none is configured (the API's default proxy),
    so that a call does no span work at all. Looked up per call and cached per provider, so a provider configured
    after import (or replaced by a test) is followed."""
    global _cache
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        return None
    cache = _cache
    if cache is None or cache[0] is not provider:
        cache = _cache = (provider, provider.get_tracer("tokenbank", __version__))
    return cache[1]


def _note_batch_on_span(size: int) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(BATCH_SIZE, size)


def _traced(name: str, fn: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Coroutine[Any, Any, Any]]:
    span_name = f"tokenbank.{name}"

    @functools.wraps(fn)
    async def traced(self: HasSettings, /, *args: Any, **kwargs: Any) -> Any:
        tracer = _tracer()
        if tracer is None:
            return await fn(self, *args, **kwargs)
        settings = self.settings
        attributes = {OPERATION: name, STORE: store_name(settings), SYMBOL: settings.symbol}
        with tracer.start_as_current_span(
            span_name, kind=trace.SpanKind.INTERNAL, attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:  # fmt: skip
            try:
                result = await fn(self, *args, **kwargs)
            except TokenBankError as exc:
                _failed(span, exc.code, exc)
                raise
            except asyncio.CancelledError:
                span.set_attribute(OUTCOME, "cancelled")
                raise
            except Exception as exc:
                _failed(span, "error", exc)
                raise
            span.set_attribute(OUTCOME, "ok")
            return result

    return traced


def _failed(span: Span, outcome: str, exc: BaseException) -> None:
    span.set_attribute(OUTCOME, outcome)
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(trace.Status(trace.StatusCode.ERROR, outcome))


if otel_available():
    from opentelemetry import trace
