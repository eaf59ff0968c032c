"""Prometheus metrics of one bank: operation counts and latencies, supply gauges, in its own registry.

Each :class:`Metrics` owns a ``CollectorRegistry`` (no process-global state), so any number of banks can live
in one process (tests create many). Exported series::

    tokenbank_info{symbol, storage_mode, version}            1
    tokenbank_operations_total{operation, outcome}           outcome = "ok" or the error code
    tokenbank_operation_duration_seconds{operation}          histogram
    tokenbank_total_supply / tokenbank_circulating_supply    gauges, read from the store on each scrape
    tokenbank_supply_refresh_errors_total                    scrapes whose supply read failed

Needs the ``metrics`` extra (``pip install 'tokenbank[metrics]'``); without it, building a ``Metrics`` raises
ConfigurationError.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from tokenbank._version import __version__
from tokenbank.errors import ConfigurationError, TokenBankError
from tokenbank.storage.capabilities import SyncOperations

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from tokenbank.ledger import Ledger
    from tokenbank.storage.hybrid.status import SyncStatus

logger = logging.getLogger("tokenbank")

SupplyReader = Callable[[], Awaitable[tuple[Decimal, Decimal]]]
"""An async callable returning ``(total_supply, circulating_supply)``."""

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SUPPLY_TIMEOUT = 2.0
_INSTALL_HINT = "Prometheus metrics need prometheus-client: pip install 'tokenbank[metrics]'"


def metrics_available() -> bool:
    """Whether the ``metrics`` extra (prometheus-client) is installed."""
    return importlib.util.find_spec("prometheus_client") is not None


class Metrics:
    """Prometheus metrics for one token. The facade calls :meth:`observe` (or :meth:`track`) per operation;
    :meth:`scrape` refreshes the supply gauges and renders the text format.

    Raises ConfigurationError when prometheus-client is not installed."""

    def __init__(
        self,
        *,
        symbol: str,
        supply: SupplyReader | None = None,
        storage_mode: str = "",
        supply_timeout: float = SUPPLY_TIMEOUT,
    ) -> None:
        try:
            from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, Info
        except ImportError:
            raise ConfigurationError(_INSTALL_HINT) from None

        self.registry = CollectorRegistry(auto_describe=True)
        self.content_type: str = CONTENT_TYPE_LATEST
        self._supply_reader = supply
        self._supply_timeout = supply_timeout
        self._supply: tuple[float, float] | None = None
        Info("tokenbank", "The token these metrics describe.", registry=self.registry).info(
            {"symbol": symbol, "storage_mode": storage_mode, "version": __version__}
        )
        self.operations = Counter(
            "tokenbank_operations",
            "Ledger operations by outcome: ok, or the error code.",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tokenbank_operation_duration_seconds",
            "Time spent in a ledger operation, including the store round trip.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.supply_errors = Counter(
            "tokenbank_supply_refresh_errors",
            "Scrapes whose supply read failed (the supply gauges are then left out).",
            registry=self.registry,
        )
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.registry.register(cast("Collector", _SupplyCollector(self)))

    @classmethod
    def for_ledger(cls, ledger: Ledger) -> Metrics:
        """Metrics whose supply gauges read ``ledger`` on each scrape."""

        async def supply() -> tuple[Decimal, Decimal]:
            return (await ledger.get_token_info()).total_supply, await ledger.circulating_supply()

        def sync_status() -> SyncStatus | None:
            storage = ledger.storage
            return storage.sync_status() if isinstance(storage, SyncOperations) else None

        settings = ledger.settings
        metrics = cls(symbol=settings.symbol, supply=supply, storage_mode=str(settings.storage_mode))
        if settings.storage_mode == "hybrid":  # sync backlog and lag
            from tokenbank.storage.hybrid.metrics import register_sync_metrics

            register_sync_metrics(metrics, sync_status)
        return metrics

    # recording ---------------------------------------------------------------------------------------------
    def observe(self, operation: str, outcome: str, seconds: float) -> None:
        """Count one ``operation`` with its ``outcome`` ("ok" or an error code) and record its latency."""
        # labels() builds and locks per call; on the hot path the few label children are looked up once
        children = self._children.get((operation, outcome))
        if children is None:
            children = (self.operations.labels(operation, outcome), self.latency.labels(operation))
            self._children[(operation, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)

    @contextmanager
    def track(self, operation: str) -> Iterator[None]:
        """Time the block and record it: "ok", the TokenBankError's code, "cancelled" or "internal_error"."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            yield
        except TokenBankError as exc:
            outcome = exc.code
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except BaseException:
            outcome = "internal_error"
            raise
        finally:
            self.observe(operation, outcome, time.perf_counter() - started)

    # exposition --------------------------------------------------------------------------------------------
    async def refresh(self) -> None:
        """Read the supply for the gauges (bounded by a timeout); on failure the gauges are left out and
        ``tokenbank_supply_refresh_errors_total`` counts it. Never raises for a store failure."""
        if self._supply_reader is None:
            return
        try:
            total, circulating = await asyncio.wait_for(self._supply_reader(), self._supply_timeout)
        except Exception as exc:  # a scrape must answer even when the store does not
            self._supply = None
            self.supply_errors.inc()
            logger.warning("metrics: supply read failed: %s", type(exc).__name__, extra={"operation": "metrics"})
            return
        self._supply = (float(total), float(circulating))

    def render(self) -> bytes:
        """Everything in the registry, in the Prometheus text format (supply as of the last refresh)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    async def scrape(self) -> bytes:
        """:meth:`refresh`, then :meth:`render`: what a ``/metrics`` endpoint answers."""
        await self.refresh()
        return self.render()

    def supply_values(self) -> tuple[float, float] | None:
        """The cached ``(total, circulating)`` supply, or None before a successful refresh."""
        return self._supply


class _SupplyCollector:
    """Yields the supply gauges from the value cached by the last refresh (collect() must not do I/O)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        values = self._metrics.supply_values()
        if values is None:
            return []
        total, circulating = values
        return [
            GaugeMetricFamily("tokenbank_total_supply", "Tokens in existence (initial + minted - burned).", total),
            GaugeMetricFamily(
                "tokenbank_circulating_supply", "Total supply minus what the excluded accounts hold.", circulating
            ),
        ]

    def describe(self) -> Iterable[Any]:
        # Without describe(), the registry would call collect() at registration, before any refresh.
        from prometheus_client.core import GaugeMetricFamily

        return [
            GaugeMetricFamily("tokenbank_total_supply", "Tokens in existence (initial + minted - burned)."),
            GaugeMetricFamily("tokenbank_circulating_supply", "Total supply minus what the excluded accounts hold."),
        ]


__all__ = ["LATENCY_BUCKETS", "Metrics", "SupplyReader", "metrics_available"]
