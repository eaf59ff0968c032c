"""Prometheus series of the sync, from the figures the worker keeps (a scrape does no I/O)::

    tokenbank_sync_lag_seconds            age of the oldest entry not yet in PostgreSQL (0 when drained)
    tokenbank_sync_backlog_entries        entries not yet acknowledged (undelivered + pending)
    tokenbank_sync_pending_entries        entries read by a worker, not yet acknowledged
    tokenbank_sync_entry_lag_seconds{quantile="0.5"|"0.99"}   Redis commit -> PostgreSQL commit, newest entries
    tokenbank_sync_synced_total           entries this process's worker wrote into PostgreSQL
    tokenbank_sync_duplicates_total       redelivered entries it found already there (skipped)
    tokenbank_sync_conflicts_total        entries it quarantined
    tokenbank_sync_errors_total           failed attempts (outages), each retried
    tokenbank_sync_active                 1 while this process's worker holds the lease

Wire it with ``register_sync_metrics(bank.metrics, store.sync_status)``. Needs the ``metrics`` extra.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from prometheus_client.registry import Collector, CollectorRegistry

    from tokenbank.storage.hybrid.status import SyncStatus


class HasRegistry(Protocol):
    """A bank's :class:`~tokenbank.metrics.Metrics`: anything with the Prometheus registry to add to."""

    @property
    def registry(self) -> CollectorRegistry: ...


class SyncCollector:
    """Reads a worker's :class:`SyncStatus` on each collect (None: nothing to report)."""

    def __init__(self, status: Callable[[], SyncStatus | None]) -> None:
        self._status = status

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

        status = self._status()
        if status is None:
            return []
        families: list[Any] = []
        backlog = status.backlog
        if backlog is not None:
            families += [
                GaugeMetricFamily("tokenbank_sync_lag_seconds", "Age of the oldest entry not yet in PostgreSQL.",
                                  backlog.lag_seconds),
                GaugeMetricFamily("tokenbank_sync_backlog_entries", "Stream entries not yet acknowledged.",
                                  backlog.entries),
                GaugeMetricFamily("tokenbank_sync_pending_entries", "Entries read but not yet acknowledged.",
                                  backlog.pending),
            ]  # fmt: skip
        p50, p99 = status.lag_percentile(50), status.lag_percentile(99)
        if p50 is not None and p99 is not None:
            entry_lag = SummaryMetricFamily(
                "tokenbank_sync_entry_lag_seconds", "From Redis commit to PostgreSQL commit, per entry (recent)."
            )
            families.append(_with_quantiles(entry_lag, p50, p99, len(status.lag_samples)))
        for name, help_text, value in (
            ("tokenbank_sync_synced", "Entries written into PostgreSQL by this process.", status.synced),
            ("tokenbank_sync_duplicates", "Redelivered entries already in PostgreSQL (skipped).", status.duplicates),
            ("tokenbank_sync_conflicts", "Entries quarantined in tb_sync_conflicts.", status.conflicts),
            ("tokenbank_sync_errors", "Failed sync attempts (retried).", status.errors),
        ):
            families.append(CounterMetricFamily(name, help_text, value))
        active = 1.0 if status.role == "active" else 0.0
        families.append(GaugeMetricFamily("tokenbank_sync_active", "1 while this worker holds the lease.", active))
        return families

    def describe(self) -> Iterable[Any]:
        return []  # dynamic: nothing is collected at registration


def _with_quantiles(family: Any, p50: float, p99: float, count: int) -> Any:
    # SummaryMetricFamily has no quantile argument in its constructor; add the samples by hand.
    family.add_sample("tokenbank_sync_entry_lag_seconds", {"quantile": "0.5"}, p50)
    family.add_sample("tokenbank_sync_entry_lag_seconds", {"quantile": "0.99"}, p99)
    family.add_sample("tokenbank_sync_entry_lag_seconds_count", {}, count)
    return family


def register_sync_metrics(metrics: HasRegistry, status: Callable[[], SyncStatus | None]) -> SyncCollector:
    """Add the sync series to a bank's registry; ``status`` is e.g. ``HybridStorage.sync_status``."""
    collector = SyncCollector(status)
    metrics.registry.register(cast("Collector", collector))
    return collector
