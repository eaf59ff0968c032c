"""``tokenbank split``: one payment shared among receivers by percentages and amounts, all or nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from tokenbank.cli import render
from tokenbank.cli.ledger import Amount, AmountCommand, JsonFlag, Metadata, Reason, _write
from tokenbank.cli.runtime import state_of
from tokenbank.models import Transaction
from tokenbank.services.event_payloads import transaction_data


def split(
    ctx: typer.Context,
    from_user: Annotated[str, typer.Argument(metavar="FROM", help="Sender account id.")],
    amount: Amount,
    legs: Annotated[
        list[str],
        typer.Argument(
            metavar="TO:SHARE",
            help="Receiver and share, e.g. platform:10% or shipping:4.99 (an amount); at most 100.",
            show_default=False,
        ),
    ],
    remainder_to: Annotated[
        str | None,
        typer.Option(help="Receives what the shares leave (default: the first receiver).", show_default=False),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key", "--key", help="Retry-safe key: the same key and split apply once.", show_default=False
        ),
    ] = None,
    metadata: Metadata = None,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Pay AMOUNT from FROM to every TO by its SHARE, in one atomic write: exactly AMOUNT leaves FROM, or nothing
    moves. Percentages round down, the largest fractions get the units still due, the rest goes to
    --remainder-to (see docs/splits.md)."""
    pairs = [_leg(text) for text in legs]
    shown = _write(
        ctx, amount, metadata,
        lambda bank, value, meta: bank.transfer_split(
            from_user, value, pairs, remainder_to=remainder_to, idempotency_key=idempotency_key, metadata=meta,
            reason=reason,
        ),
    )  # fmt: skip
    txs, symbol = shown
    if as_json:
        render.emit_json([transaction_data(tx) for tx in txs])
        return
    state_of(ctx).out.print(_table(txs, symbol))


def _leg(text: str) -> tuple[str, str]:
    """``TO:SHARE``, split at the last colon (account ids may hold colons, shares never do)."""
    receiver, colon, share = text.rpartition(":")
    if not colon or not receiver or not share:
        raise typer.BadParameter(f"{text!r} is not TO:SHARE, e.g. platform:10% or alice:2.50", param_hint="TO:SHARE")
    return receiver, share


def _table(txs: list[Transaction], symbol: str) -> Table:
    first = txs[0]
    replayed = " (replayed)" if first.replayed else ""
    table = Table(title=f"split {first.split_id}{replayed}", title_justify="left")
    table.add_column("to", overflow="fold")
    table.add_column(f"amount ({symbol})", justify="right", no_wrap=True)
    table.add_column("transaction", overflow="fold")
    for tx in txs:
        table.add_row(Text(tx.to_user_id or ""), render.grouped(tx.amount), tx.id)
    total = sum((tx.amount for tx in txs), Decimal(0))
    table.caption = f"{render.grouped(total)} {symbol} from {first.from_user_id}"
    return table


def register(app: typer.Typer) -> None:
    app.command(cls=AmountCommand)(split)
