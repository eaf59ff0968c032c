"""``tokenbank grant``, ``tokenbank vest`` and ``tokenbank lots``: credit lots that expire or mature, vesting
schedules made of them, and an account's lots in spend order."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from tokenbank.cli import render
from tokenbank.cli.ledger import (
    Amount,
    AmountCommand,
    IdempotencyKey,
    JsonFlag,
    Metadata,
    Reason,
    _show_transaction,
    _with_symbol,
    _write,
)
from tokenbank.cli.runtime import state_of
from tokenbank.models import BalanceDetail, Lot

_FORMATS = ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z"]
Category = Annotated[str | None, typer.Option("--category", help="A label of the lot, e.g. promo.")]
Funder = Annotated[
    str | None, typer.Option("--from", help="Fund it from this account (default: minted from the supply).")
]


def grant(
    ctx: typer.Context,
    to_user: Annotated[str, typer.Argument(metavar="TO", help="Receiver of the lot.")],
    amount: Amount,
    expires_at: Annotated[
        datetime | None,
        typer.Option(
            "--expires-at", metavar="TIME", formats=_FORMATS, help="When what is left expires.", show_default=False
        ),
    ] = None,
    available_at: Annotated[
        datetime | None,
        typer.Option(
            "--available-at", metavar="TIME", formats=_FORMATS, help="When it becomes spendable.", show_default=False
        ),
    ] = None,
    category: Category = None,
    from_user: Funder = None,
    idempotency_key: IdempotencyKey = None,
    metadata: Metadata = None,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Credit AMOUNT to TO as a lot, spendable from --available-at until --expires-at (times with their UTC
    offset, e.g. 2027-01-31T00:00:00+00:00); debits spend the soonest-expiring lots first (see docs/lots.md)."""
    shown = _write(
        ctx, amount, metadata,
        lambda bank, value, meta: bank.grant(
            to_user, value, expires_at=expires_at, available_at=available_at, category=category,
            from_user_id=from_user, idempotency_key=idempotency_key, metadata=meta, reason=reason,
        ),
    )  # fmt: skip
    _show_transaction(ctx, shown, as_json)


def vest(
    ctx: typer.Context,
    to_user: Annotated[str, typer.Argument(metavar="TO", help="Receiver of the vesting.")],
    amount: Amount,
    start: Annotated[
        datetime, typer.Option("--start", metavar="TIME", formats=_FORMATS, help="When the schedule starts.")
    ],
    duration_days: Annotated[float, typer.Option("--duration-days", help="The last tranche matures then.")],
    interval_days: Annotated[float, typer.Option("--interval-days", help="A tranche matures every interval.")] = 30,
    cliff_days: Annotated[float, typer.Option("--cliff-days", help="No tranche matures before the cliff.")] = 0,
    category: Category = "vesting",
    from_user: Funder = None,
    idempotency_key: IdempotencyKey = None,
    metadata: Metadata = None,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Grant AMOUNT to TO as lots maturing every --interval-days from --start, none before the cliff."""
    vesting, symbol = _write(
        ctx, amount, metadata,
        lambda bank, value, meta: bank.vest(
            to_user, value, start=start, duration=timedelta(days=duration_days),
            interval=timedelta(days=interval_days), cliff=timedelta(days=cliff_days), category=category,
            from_user_id=from_user, idempotency_key=idempotency_key, metadata=meta, reason=reason,
        ),
    )  # fmt: skip
    rows = [lot_dict(lot) for lot in vesting.lots]
    if as_json:
        render.emit_json({"id": vesting.id, "user_id": vesting.user_id, "amount": render.plain(vesting.amount),
                          "lots": rows, "replayed": vesting.replayed})  # fmt: skip
        return
    state_of(ctx).out.print(_lots_table(f"vesting {vesting.id}", vesting.lots, symbol))


def lots(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(metavar="USER", help="Account id.")],
    as_json: JsonFlag = False,
) -> None:
    """USER's available, pending and expired amounts and its lots in spend order."""
    state = state_of(ctx)
    detail, symbol = state.run(lambda bank: _with_symbol(bank, bank.get_balance_detail(user)))
    if as_json:
        render.emit_json(detail_dict(detail))
        return
    state.out.print(render.field_table(f"{user}: lots", {}, _amounts(detail), symbol))
    state.out.print(_lots_table("lots in spend order", detail.lots, symbol))


def detail_dict(detail: BalanceDetail) -> dict[str, Any]:
    return {
        "user_id": detail.user_id,
        **{name: render.plain(value) for name, value in _amounts(detail).items()},
        "lots": [lot_dict(lot) for lot in detail.lots],
    }


def lot_dict(lot: Lot) -> dict[str, Any]:
    return {
        "id": lot.id,
        "amount": render.plain(lot.amount),
        "granted": render.plain(lot.granted),
        "expires_at": None if lot.expires_at is None else render.iso_time(lot.expires_at),
        "available_at": None if lot.available_at is None else render.iso_time(lot.available_at),
        "category": lot.category,
    }


def _amounts(detail: BalanceDetail) -> dict[str, Any]:
    return {"available": detail.available, "held": detail.held, "pending": detail.pending, "expired": detail.expired}


def _lots_table(title: str, items: list[Lot], symbol: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("lot", no_wrap=True, min_width=36)  # whole: it is what other commands take
    for column in ("left", "granted", "available at", "expires at", "category"):
        table.add_column(column)
    for lot in items:
        table.add_row(
            lot.id, f"{render.grouped(lot.amount)} {symbol}", f"{render.grouped(lot.granted)} {symbol}",
            "" if lot.available_at is None else render.iso_time(lot.available_at),
            "" if lot.expires_at is None else render.iso_time(lot.expires_at), lot.category or "",
        )  # fmt: skip
    return table


def register(app: typer.Typer) -> None:
    app.command(cls=AmountCommand)(grant)
    app.command(cls=AmountCommand)(vest)
    app.command()(lots)
