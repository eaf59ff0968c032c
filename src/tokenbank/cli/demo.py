"""``tokenbank demo``: a fresh token, an airdrop, a simulated economy, then leaderboard, supply, verify, throughput."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tokenbank.bank import TokenBank
from tokenbank.cli import charts, demo_report, render
from tokenbank.cli.economy import WEIGHTS, Economy, Stats, cents, percentile
from tokenbank.cli.runtime import CliState, mask_url, state_of
from tokenbank.models import Holder, TokenInfo, TransferRequest, VerifyReport
from tokenbank.settings import Settings, StorageMode

DEMO_FILE = "tokenbank-demo.db"
INITIAL_SUPPLY = 10_000_000
AIRDROP_BATCH = 250
QUICK = (200, 500)
_KIND_ORDER = [*WEIGHTS, "capture", "void", "reversal"]


@dataclass(frozen=True)
class DemoRun:
    airdrop_seconds: float
    batches: int
    stats: Stats
    holders: list[Holder]
    info: TokenInfo
    circulating: Decimal
    report: VerifyReport
    economy: charts.Economy | None  # with --report: what the charts show


def demo(
    ctx: typer.Context,
    accounts: Annotated[int, typer.Option(min=2, max=1_000_000, help="Accounts to airdrop to.")] = 2000,
    operations: Annotated[int, typer.Option(min=0, max=10_000_000, help="Random operations to run.")] = 5000,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Concurrent asyncio tasks.")] = 16,
    quick: Annotated[bool, typer.Option("--quick", help=f"Small run: {QUICK[0]} accounts, {QUICK[1]} ops.")] = False,
    seed: Annotated[int | None, typer.Option(help="Random seed (printed, to rerun the same mix).")] = None,
    redis_url: Annotated[
        str | None,
        typer.Option("--redis-url", help="Redis for --mode redis or hybrid (default redis://127.0.0.1:6379/0)."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Also write PNG charts of the economy to this folder: balance distribution, volume over time, "
            "top holders (needs pip install 'tokenbank\\[charts]').",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Simulate an economy on a fresh ledger; report leaderboard, supply, verify and throughput.

    Uses ./tokenbank-demo.db (replaced on every run) unless the command line says otherwise (--database-url,
    --mode, --symbol before the command; --redis-url). The environment's TOKEN_*, DATABASE_URL and REDIS_URL
    are ignored: they describe a real ledger.

    Insufficient-balance refusals are expected; the exit code is 1 only if verify fails."""
    state = state_of(ctx)
    if quick:
        accounts, operations = QUICK
    seed = random.randrange(2**32) if seed is None else seed
    with state.handled():
        if report is not None:
            charts.require()  # before the run, not after it
        settings = _settings(state, redis_url)
        if state.database_url is None and settings.storage_mode is StorageMode.SQL:
            _remove_previous(Path(DEMO_FILE))
    state.out.print(
        Text.assemble(
            ("tokenbank demo", "bold"),
            f": {settings.symbol} on {_store(settings)} ({settings.storage_mode.value}), "
            f"{accounts} accounts, {operations} operations, {concurrency} concurrent tasks, seed {seed}",
        ),
        soft_wrap=True,
    )
    run = state.run(
        lambda bank: _simulate(bank, state, accounts, operations, concurrency, random.Random(seed), report is not None),
        settings=settings,
        create=True,
    )
    _report(state, run, accounts, concurrency)
    if report is not None and run.economy is not None:
        with state.handled():
            for path in demo_report.write(run.economy, report):
                state.out.print(f"wrote {path}", soft_wrap=True, highlight=False)
    if not run.report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(demo)


def _settings(state: CliState, redis_url: str | None) -> Settings:
    """The demo's settings come from its command line only. TOKEN_*, DATABASE_URL and REDIS_URL describe the
    user's real ledger; a demo that read them would write its DEMO token there. Raises ConfigurationError."""
    given: dict[str, Any] = {"storage_mode": state.mode, "redis_url": redis_url}
    return Settings.from_arguments(
        database_url=state.database_url or f"sqlite+aiosqlite:///{DEMO_FILE}",
        symbol=state.symbol or "DEMO",
        name="Demo Token",
        decimals=2,
        initial_supply=Decimal(INITIAL_SUPPLY),
        treasury_account="treasury",
        **{name: value for name, value in given.items() if value is not None},
    )


def _store(settings: Settings) -> str:
    """Where the demo writes, for its banner (passwords hidden)."""
    if settings.storage_mode is StorageMode.SQL:
        return mask_url(settings.database_url)
    if settings.storage_mode is StorageMode.REDIS:
        return mask_url(settings.redis_url)
    return f"{mask_url(settings.redis_url)} + {mask_url(settings.database_url)}"


def _remove_previous(path: Path) -> None:
    """Delete the last demo's database and its WAL side files, so every run starts from nothing."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


async def _simulate(
    bank: TokenBank,
    state: CliState,
    accounts: int,
    operations: int,
    concurrency: int,
    rng: random.Random,
    report: bool,
) -> DemoRun:
    names = [f"user{i:06d}" for i in range(1, accounts + 1)]
    # At most half the initial supply goes out, so the airdrop never runs the treasury dry.
    high = max(1, min(200_000, INITIAL_SUPPLY * 100 // (2 * accounts)))
    low = max(1, high // 40)
    progress = Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=state.err,
    )
    began = datetime.now(UTC) - timedelta(seconds=1)  # the store's clock may lag ours a little
    with progress:
        airdrop = progress.add_task("airdrop", total=accounts)
        batches = 0
        started = time.perf_counter()
        treasury = bank.settings.treasury_account
        for start in range(0, accounts, AIRDROP_BATCH):
            batch = [
                TransferRequest(treasury, name, cents(rng.randint(low, high)), metadata={"airdrop": True})
                for name in names[start : start + AIRDROP_BATCH]
            ]
            for result in await bank.transfer_many(batch):
                if result.error is not None:
                    raise result.error
            batches += 1
            progress.advance(airdrop, len(batch))
        airdrop_seconds = time.perf_counter() - started
        task = progress.add_task("economy", total=operations)
        economy = Economy(bank, names, operations, rng, on_progress=lambda: progress.advance(task))
        stats = await economy.run(concurrency)
    return DemoRun(
        airdrop_seconds=airdrop_seconds,
        batches=batches,
        stats=stats,
        holders=await bank.get_top_holders(10),
        info=await bank.get_token_info(),
        circulating=await bank.get_circulating_supply(),
        report=await bank.verify(),
        economy=await demo_report.collect(bank, names, began) if report else None,
    )


def _report(state: CliState, run: DemoRun, accounts: int, concurrency: int) -> None:
    out = state.out
    rate = accounts / run.airdrop_seconds if run.airdrop_seconds else 0.0
    out.print(
        f"airdrop: {accounts} transfers from the treasury in {run.batches} transfer_many "
        f"batch{'es' if run.batches != 1 else ''}, {run.airdrop_seconds:.2f} s, {rate:,.0f} transfers/s",
        soft_wrap=True,
    )
    out.print(render.holders_table(run.holders, run.info.symbol, title="top 10 holders"))
    out.print(render.supply_table(run.info, run.circulating))
    out.print(render.verify_table(run.report))
    out.print(_throughput_table(run.stats))
    stats = run.stats
    every = stats.all_latencies()
    per_second = stats.total / stats.elapsed if stats.elapsed else 0.0
    out.print(
        Text.assemble(
            ("throughput: ", "bold"),
            (f"{per_second:,.0f} operations/s", "bold green"),
            f" ({stats.total} operations in {stats.elapsed:.2f} s, {concurrency} concurrent tasks); latency per op "
            f"p50 {percentile(every, 0.5) * 1000:.2f} ms, p99 {percentile(every, 0.99) * 1000:.2f} ms",
        ),
        soft_wrap=True,
    )
    if stats.errors:
        listed = ", ".join(f"{what} x{count}" for what, count in sorted(stats.errors.items()))
        out.print(Text(f"unexpected refusals: {listed}", style="yellow"))
    out.print(
        Text(f"verify: {'ok' if run.report.ok else 'FAILED'}", style="bold green" if run.report.ok else "bold red")
    )


def _throughput_table(stats: Stats) -> Table:
    table = Table(title="operations (refused = insufficient balance, expected)", title_justify="left")
    table.add_column("op")
    for name in ("count", "ok", "refused", "other", "p50 ms", "p99 ms"):
        table.add_column(name, justify="right")
    for kind in (kind for kind in _KIND_ORDER if stats.latencies.get(kind)):
        other = sum(count for what, count in stats.errors.items() if what.startswith(f"{kind}:"))
        table.add_row(*_row(kind, sorted(stats.latencies[kind]), stats.ok[kind], stats.refused[kind], other))
    table.add_section()
    totals = (sum(stats.ok.values()), sum(stats.refused.values()), sum(stats.errors.values()))
    table.add_row(*_row("all", stats.all_latencies(), *totals), style="bold")
    return table


def _row(label: str, latencies: list[float], ok: int, refused: int, other: int) -> list[str]:
    p50, p99 = (percentile(latencies, q) * 1000 for q in (0.5, 0.99))
    return [label, str(len(latencies)), str(ok), str(refused), str(other), f"{p50:.2f}", f"{p99:.2f}"]
