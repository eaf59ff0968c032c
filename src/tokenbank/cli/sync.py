"""Hybrid mode's commands: ``sync`` (the standalone worker), ``reconcile [--repair]`` and ``rebuild-cache``.

They open the hybrid store itself rather than a bank: a bank refuses to start on a Redis that lost its ledger,
which is exactly when ``rebuild-cache`` is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tokenbank.amounts import from_base_units
from tokenbank.cli import render
from tokenbank.cli.runtime import CliState, state_of
from tokenbank.errors import ConfigurationError
from tokenbank.settings import Settings, StorageMode

if TYPE_CHECKING:
    from tokenbank.storage.hybrid.backend import HybridStorage
    from tokenbank.storage.hybrid.reports import ReconcileReport
    from tokenbank.storage.hybrid.status import SyncStatus

T = TypeVar("T")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (amounts as strings).")]


def _settings(state: CliState, **extra: Any) -> Settings:
    settings = state.settings(**extra)
    if settings.storage_mode is not StorageMode.HYBRID:
        raise ConfigurationError("TOKEN_STORAGE_MODE: this command works on hybrid mode (set it to hybrid)")
    return settings


async def _with_store(settings: Settings, work: Callable[[HybridStorage], Awaitable[T]]) -> T:
    from tokenbank.storage.hybrid.backend import HybridStorage

    store = HybridStorage(settings)
    try:
        await store.open()
        return await work(store)
    finally:
        await store.close()


# sync ----------------------------------------------------------------------------------------------------------
def sync(
    ctx: typer.Context,
    consumer: Annotated[
        str | None, typer.Option(help="Consumer name; keep it across restarts to resume at once.", show_default=False)
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="Most entries per transaction.")] = 20_000,
    claim_idle: Annotated[float, typer.Option(min=0.1, help="Seconds before a dead worker's entries are taken.")] = 15,
    lease: Annotated[float, typer.Option(min=0.1, help="Seconds a standby waits for a dead active worker.")] = 10,
    drain: Annotated[bool, typer.Option("--drain", help="Exit once the backlog is empty.")] = False,
) -> None:
    """Run the sync worker: Redis ledger stream -> PostgreSQL, until Ctrl-C (or drained, with --drain)."""
    from tokenbank.storage.hybrid.status import SyncOptions

    state = state_of(ctx)
    with state.handled():
        settings = _settings(state, enable_synchronization=False)
        options = SyncOptions(
            batch_size=batch_size, claim_idle_ms=int(claim_idle * 1000), lease_ms=int(lease * 1000),
            consumer=consumer or f"sync@{socket.gethostname()}",
        )  # fmt: skip
        asyncio.run(_with_store(settings, lambda store: _run_worker(state.err, store, options, drain)))


async def _run_worker(console: Console, store: HybridStorage, options: Any, drain: bool) -> None:
    from tokenbank.storage.hybrid import stream
    from tokenbank.storage.hybrid.worker import SyncWorker

    worker = SyncWorker(store.redis, store.sql, options)
    stop = asyncio.Event()
    with _signals(stop):
        task = asyncio.create_task(worker.run(stop), name="tokenbank-sync")
        try:
            with Live(_status_line(worker.status), console=console, refresh_per_second=4) as live:
                while not task.done():
                    await asyncio.wait({task}, timeout=0.5)
                    live.update(_status_line(worker.status))
                    if drain and worker.status.role == "active":
                        backlog = await stream.read_backlog(store.redis.client, store.redis.keys)
                        if backlog.entries == 0:
                            stop.set()
        finally:
            stop.set()
            await asyncio.wait({task})
            await worker.finish()
            await worker.close()


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM end the loop after the batch in hand, never in the middle of it."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _status_line(status: SyncStatus) -> Text:
    backlog = status.backlog
    p50, p99 = status.lag_percentile(50), status.lag_percentile(99)
    parts = [
        (f"sync {status.role}", "bold green" if status.role == "active" else "yellow"),
        (f"  backlog {backlog.entries if backlog else '?'}", ""),
        (f" ({backlog.pending} pending)" if backlog and backlog.pending else "", "dim"),
        (f"  lag {backlog.lag_seconds:.1f} s" if backlog else "  lag ?", ""),
        (f"  {status.rate():,.0f} entries/s", "cyan"),
        (f"  synced {status.synced:,}", ""),
        (f"  p50/p99 {p50 * 1000:.0f}/{p99 * 1000:.0f} ms" if p50 is not None and p99 is not None else "", "dim"),
        (f"  last error: {status.last_error}" if status.last_error and status.role != "active" else "", "red"),
    ]
    return Text.assemble(*parts)


# reconcile -----------------------------------------------------------------------------------------------------
def reconcile(
    ctx: typer.Context,
    repair: Annotated[bool, typer.Option("--repair", help="Make Redis agree with PostgreSQL (audited).")] = False,
    full: Annotated[bool, typer.Option("--full", help="Compare every transaction id, not a sample.")] = False,
    drain_timeout: Annotated[float, typer.Option(min=0, help="Seconds to wait for the sync backlog.")] = 30,
    as_json: JsonFlag = False,
) -> None:
    """Compare Redis with PostgreSQL account by account; exit 1 on drift that is not repaired."""
    from tokenbank.storage.hybrid.reconcile import reconcile as run_reconcile

    state = state_of(ctx)
    with state.handled():
        settings = _settings(state)

        async def work(store: HybridStorage) -> ReconcileReport:
            with _progress(state.err, as_json) as (_, update):
                return await run_reconcile(
                    store, repair=repair, full=full, drain_timeout=drain_timeout, progress=update
                )

        report = asyncio.run(_with_store(settings, work))
    _print_report(state, report, settings.decimals, as_json)
    if not report.ok and not report.repaired:
        raise typer.Exit(1)


def _print_report(state: CliState, report: ReconcileReport, decimals: int, as_json: bool) -> None:
    def units(value: int) -> str:
        return render.plain(from_base_units(value, decimals))

    if as_json:
        data = asdict(report)
        data["ok"] = report.ok
        for drift in data["drifted"]:
            for key in ("redis_balance", "postgres_balance", "redis_held", "postgres_held"):
                drift[key] = units(drift[key])
        for key in ("redis_total_supply", "postgres_total_supply"):
            data[key] = units(data[key])
        render.emit_json(data)
        return
    out = state.out
    verdict = Text("no drift", style="bold green") if report.ok else Text("DRIFT", style="bold red")
    out.print(Text.assemble("reconcile: ", verdict, f"  ({report.accounts_checked:,} accounts checked)"))
    if not report.drained:
        out.print(Text(f"warning: the sync backlog did not drain ({report.backlog} entries left)", style="yellow"))
    out.print(
        f"total supply: redis {units(report.redis_total_supply)}, postgresql {units(report.postgres_total_supply)}"
    )
    out.print(
        f"transactions ({report.transactions_compared}): redis {report.redis_transactions:,}, "
        f"postgresql {report.postgres_transactions:,}; missing in redis {len(report.missing_in_redis)}, "
        f"missing in postgresql {len(report.missing_in_postgres)}; quarantined conflicts {report.conflicts}"
    )
    if report.chain_mismatches:
        shown = ", ".join(str(seq) for seq in report.chain_mismatches[:20])
        out.print(Text(f"hash chain: postgresql rows differ from redis's chain at seq {shown}", style="bold red"))
    if report.lot_mismatches:
        shown = ", ".join(report.lot_mismatches[:20])
        out.print(Text(f"credit lots: redis and postgresql differ on {shown}", style="bold red"))
    if report.drifted:
        table = Table("account", "redis balance", "postgresql balance", "redis held", "postgresql held")
        for d in report.drifted[:200]:
            table.add_row(
                d.user_id,
                units(d.redis_balance),
                units(d.postgres_balance),
                units(d.redis_held),
                units(d.postgres_held),
            )
        out.print(table)
    for line in report.repairs:
        out.print(Text(f"repaired: {line}", style="green"))


# rebuild-cache -------------------------------------------------------------------------------------------------
def rebuild_cache(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even though Redis still holds the token.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Rebuild Redis (balances, leaderboard, history, holds, idempotency keys...) from PostgreSQL."""
    from tokenbank.storage.hybrid.rebuild import rebuild_cache as run_rebuild

    state = state_of(ctx)
    with state.handled():
        settings = _settings(state, enable_synchronization=False)

        async def work(store: HybridStorage) -> dict[str, Any]:
            with _progress(state.err, as_json) as (_, update):
                report = await run_rebuild(store, force=force, progress=update)
            checks = await store.verify()
            return {**asdict(report), "verified": all(check.ok for check in checks)}

        result = asyncio.run(_with_store(settings, work))
    if as_json:
        render.emit_json(result)
        return
    state.out.print(
        f"rebuilt Redis from PostgreSQL in {result['seconds']:.1f} s: {result['accounts']:,} accounts, "
        f"{result['transactions']:,} transactions, {result['holds']:,} holds, {result['audit_entries']:,} audit "
        f"entries; verify {'passed' if result['verified'] else 'FAILED'}"
    )


@contextlib.contextmanager
def _progress(console: Console, quiet: bool) -> Iterator[tuple[Progress, Callable[[str, int, int | None], None]]]:
    """One bar per phase (``progress(phase, done, total)`` from the library), on stderr."""
    bars = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
        disable=quiet,
    )  # fmt: skip
    tasks: dict[str, TaskID] = {}

    def update(phase: str, done: int, total: int | None) -> None:
        if phase not in tasks:
            tasks[phase] = bars.add_task(phase, total=total)
        bars.update(tasks[phase], completed=done, total=total)

    with bars:
        yield bars, update


def register(app: typer.Typer) -> None:
    app.command("sync")(sync)
    app.command("reconcile")(reconcile)
    app.command("rebuild-cache")(rebuild_cache)
