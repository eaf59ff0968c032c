"""``tokenbank worker``: run the token's background jobs (webhooks and monitors, chain sealing, the hold sweeper,
the hybrid sync) until SIGTERM."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from tokenbank.bank import TokenBank
from tokenbank.cli.runtime import state_of
from tokenbank.services.delivery import EVENTS_CURSOR, Backoff
from tokenbank.worker import Worker, WorkerOptions, default_jobs


def worker(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Run one round of every job, then exit.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Print the worker's health and exit 0 (ok) or 1.")] = False,
    lease_seconds: Annotated[
        float, typer.Option("--lease-seconds", min=1, help="How long a silent leader keeps its jobs.")
    ] = 30.0,
    idle_seconds: Annotated[
        float, typer.Option("--idle-seconds", min=0, help="Sleep when there is nothing to do.")
    ] = 1.0,
    retry_base_seconds: Annotated[
        float, typer.Option("--retry-base-seconds", min=0.001, help="First webhook retry delay; doubles per attempt.")
    ] = 5.0,
    retry_cap_seconds: Annotated[
        float, typer.Option("--retry-cap-seconds", min=0.001, help="Longest delay between two webhook retries.")
    ] = 3600.0,
) -> None:
    """Run the token's background jobs: webhook delivery and balance monitors, chain sealing, the hold expiry
    sweep and, in hybrid mode, the sync into PostgreSQL. Each is leader-elected through a lease in the store, so
    any number of workers can run. SIGTERM (or Ctrl-C) finishes the current batches and exits 0. Run the app with
    TOKEN_BACKGROUND=none to leave this work to the worker."""
    state = state_of(ctx)
    if check:
        healthy = state.run(lambda bank: _check(bank, lambda text: state.out.print(text, soft_wrap=True)))
        raise typer.Exit(0 if healthy else 1)

    async def work(bank: TokenBank) -> None:
        jobs = default_jobs(bank, backoff=Backoff(base=retry_base_seconds, cap=retry_cap_seconds))
        runner = Worker(bank, jobs, WorkerOptions(lease_seconds=lease_seconds, idle_seconds=idle_seconds))
        await runner.run(once=once, handle_signals=True)
        state.err.print(f"worker stopped after {runner.batches} batches")

    with state.handled():
        settings = state.settings(background="none")  # the jobs run here, not as the bank's own loops
    state.run(work, settings=settings)


async def _check(bank: TokenBank, say: Callable[..., None]) -> bool:
    report = await bank.health()
    say(f"store: {report.status}")
    healthy = report.status != "down"
    if healthy:
        latest = await bank.events.read(after_seq=await bank.events.cursor(EVENTS_CURSOR), limit=10_000)
        say(f"event pass: at seq {await bank.events.cursor(EVENTS_CURSOR)}, {len(latest)} transactions behind")
        for endpoint in await bank.webhooks.list():
            dead = await bank.webhooks.deliveries(endpoint.id, failed=True, limit=10_000)
            say(f"endpoint {endpoint.id} {endpoint.url}: {len(dead)} dead letters")
    return healthy


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
