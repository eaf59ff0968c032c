"""``tokenbank webhooks add|list|remove|deliveries|redeliver`` and ``tokenbank events tail``."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from tokenbank.bank import TokenBank
from tokenbank.cli import render
from tokenbank.cli.runtime import state_of
from tokenbank.models import Transaction
from tokenbank.services.event_payloads import transaction_data
from tokenbank.services.webhooks import WebhookDelivery, WebhookEndpoint

app = typer.Typer(name="webhooks", help="Webhook endpoints, their deliveries and dead letters.", no_args_is_help=True)
events_app = typer.Typer(name="events", help="The ledger feed.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _endpoint(e: WebhookEndpoint) -> dict[str, Any]:
    return {"id": e.id, "url": e.url, "events": list(e.events), "secret": e.secret,
            "created_at": render.iso_time(e.created_at)}  # fmt: skip


def _delivery(d: WebhookDelivery) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        return None if value is None else render.iso_time(value)

    return {
        "id": d.id, "endpoint_id": d.endpoint_id, "event_id": d.event_id, "event_type": d.event_type, "seq": d.seq,
        "status": d.status, "attempts": d.attempts, "queued_at": when(d.queued_at),
        "next_attempt_at": when(d.next_attempt_at), "last_attempt_at": when(d.last_attempt_at),
        "delivered_at": when(d.delivered_at), "response_status": d.response_status, "last_error": d.last_error,
    }  # fmt: skip


@app.command("add")
def add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="Where to POST events (http:// or https://).")],
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            "-e",
            help="Event type to send (repeatable): transaction.created, balance.threshold, lot.expiring.",
        ),
    ] = None,
    secret: Annotated[
        str | None, typer.Option("--secret", help="A whsec_... secret (one is generated when not given).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register an endpoint; prints its id and signing secret."""
    state = state_of(ctx)
    events = tuple(event) if event else ("transaction.created",)
    endpoint = state.run(lambda bank: bank.webhooks.add(url, events=events, secret=secret))
    if as_json:
        render.emit_json(_endpoint(endpoint))
        return
    state.out.print(f"endpoint {endpoint.id}\nurl      {endpoint.url}\nevents   {', '.join(endpoint.events)}")
    state.out.print(f"secret   {endpoint.secret}", soft_wrap=True)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every endpoint of the token."""
    state = state_of(ctx)
    endpoints = state.run(lambda bank: bank.webhooks.list())
    if as_json:
        render.emit_json([_endpoint(e) for e in endpoints])
        return
    table = Table("id", "url", "events", "created")
    for e in endpoints:
        table.add_row(e.id, e.url, ", ".join(e.events), render.iso_time(e.created_at))
    state.out.print(table)


@app.command("remove")
def remove(ctx: typer.Context, endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id.")]) -> None:
    """Stop delivering to an endpoint (its delivery log stays)."""
    state = state_of(ctx)
    state.run(lambda bank: bank.webhooks.remove(endpoint_id))
    state.out.print(f"removed {endpoint_id}")


@app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id.")],
    failed: Annotated[bool, typer.Option("--failed", help="Only dead letters.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """An endpoint's deliveries, newest event first."""
    state = state_of(ctx)
    found = state.run(lambda bank: bank.webhooks.deliveries(endpoint_id, failed=failed, limit=limit))
    if as_json:
        render.emit_json([_delivery(d) for d in found])
        return
    table = Table("id", "seq", "event", "status", "attempts", "last error")
    for d in found:
        table.add_row(d.id, str(d.seq), d.event_type, d.status, str(d.attempts), d.last_error or "")
    state.out.print(table)


@app.command("redeliver")
def redeliver(ctx: typer.Context, delivery_id: Annotated[str, typer.Argument(help="The delivery's id.")]) -> None:
    """Queue a delivery (typically a dead letter) again, with a fresh retry window."""
    state = state_of(ctx)
    delivery = state.run(lambda bank: bank.webhooks.redeliver(delivery_id))
    state.out.print(f"queued {delivery.id} again (event {delivery.event_id})")


@events_app.command("tail")
def tail(
    ctx: typer.Context,
    after: Annotated[int, typer.Option("--after", min=0, help="Start after this seq.")] = 0,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new transactions.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many (without -f).")] = 100,
) -> None:
    """Print the feed as JSON lines (one transaction each, in seq order)."""
    state = state_of(ctx)

    def show(tx: Transaction) -> None:
        typer.echo(json.dumps(transaction_data(tx), ensure_ascii=False))

    async def work(bank: TokenBank) -> None:
        position = after
        while True:
            page = await bank.events.read(after_seq=position, limit=limit)
            for tx in page:
                show(tx)
            if page:
                position = page[-1].seq
            if not follow:
                return
            if not page:
                await asyncio.sleep(0.5)

    state.run(work)


def register(root: typer.Typer) -> None:
    root.add_typer(app)
    root.add_typer(events_app)
