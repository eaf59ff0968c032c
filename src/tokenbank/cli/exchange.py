"""``tokenbank exchange``: USER pays one token to COUNTERPARTY and receives another from it, all or nothing."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from tokenbank.amounts import to_decimal
from tokenbank.bank import TokenBank
from tokenbank.cli import render
from tokenbank.cli.ledger import Amount, AmountCommand, JsonFlag, Metadata, Reason, _metadata
from tokenbank.cli.runtime import CliState, check_sqlite_path, missing_token, parse_amount, state_of
from tokenbank.errors import TokenNotInitializedError
from tokenbank.exchanges import exchange as apply_exchange
from tokenbank.models import Exchange
from tokenbank.services.event_payloads import transaction_data
from tokenbank.settings import Settings, StorageMode


def exchange(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(metavar="USER", help="Pays AMOUNT of the token (--symbol).")],
    amount: Amount,
    counterparty: Annotated[str, typer.Argument(metavar="COUNTERPARTY", help="Receives AMOUNT, pays RECEIVED.")],
    received: Annotated[
        str | None,
        typer.Argument(metavar="[RECEIVED]", help="What USER receives of --for (or give --rate).", show_default=False),
    ] = None,
    for_symbol: Annotated[
        str,
        typer.Option("--for", metavar="SYMBOL", help="The token USER receives (same store).", show_default=False),
    ] = "",
    rate: Annotated[
        str | None,
        typer.Option(help="RECEIVED = AMOUNT x RATE, rounded down to --for's decimals.", show_default=False),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key", "--key", help="Retry-safe key: the same exchange applies once.", show_default=False
        ),
    ] = None,
    metadata: Metadata = None,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """USER pays AMOUNT of the token (--symbol / TOKEN_SYMBOL) to COUNTERPARTY and receives RECEIVED of the
    --for token from it, in one atomic write: both legs or neither (see docs/exchange.md)."""
    state = state_of(ctx)
    meta = _metadata(metadata)
    if not for_symbol:
        raise typer.BadParameter("name the token USER receives, e.g. --for GEMS", param_hint="'--for'")
    with state.handled():
        paid = parse_amount(amount)
        got = None if received is None else parse_amount(received)
        exact_rate = None if rate is None else to_decimal(rate)  # a rate may be finer than any token's unit
        pay_settings = state.settings()
        receive_settings = state.settings(symbol=for_symbol)
        if pay_settings.storage_mode is StorageMode.SQL:
            check_sqlite_path(pay_settings.database_url, create=False)
        done = asyncio.run(
            _run(state, pay_settings, receive_settings, user, paid, counterparty, got, exact_rate, idempotency_key,
                 meta, reason)
        )  # fmt: skip
    if as_json:
        render.emit_json(
            {"id": done.id, "pay_symbol": done.pay_symbol, "pay": transaction_data(done.pay),
             "receive_symbol": done.receive_symbol, "receive": transaction_data(done.receive),
             "replayed": done.replayed}
        )  # fmt: skip
        return
    state.out.print(_table(done))


async def _run(
    state: CliState,
    pay_settings: Settings,
    receive_settings: Settings,
    user: str,
    paid: Decimal,
    counterparty: str,
    received: Decimal | None,
    rate: Decimal | None,
    key: str | None,
    metadata: dict[str, object] | None,
    reason: str | None,
) -> Exchange:
    async with (
        await _open(state, pay_settings) as pay,
        await _open(state, receive_settings, stored_decimals=True) as receive,
    ):
        return await apply_exchange(
            (pay, user, paid), (receive, counterparty, received), rate=rate, idempotency_key=key,
            metadata=metadata, reason=reason,
        )  # fmt: skip


async def _open(state: CliState, settings: Settings, *, stored_decimals: bool = False) -> TokenBank:
    """An open bank; ``stored_decimals``: with the stored token's decimals (the environment describes the token
    of ``--symbol``, not the one of ``--for``)."""
    if stored_decimals:
        probe = TokenBank(settings).storage
        try:
            await probe.open()
            token = await probe.get_token()
        finally:
            await probe.close()
        if token is not None:
            settings = settings.model_copy(update={"decimals": token.decimals})
    bank = TokenBank(settings)
    try:
        await bank.open()
    except TokenNotInitializedError:
        state.fail(TokenNotInitializedError.code, missing_token(settings))
    return bank


def _table(done: Exchange) -> Table:
    replayed = " (replayed)" if done.replayed else ""
    table = Table(title=f"exchange {done.id}{replayed}", title_justify="left")
    table.add_column("leg")
    table.add_column("from", overflow="fold")
    table.add_column("to", overflow="fold")
    table.add_column("amount", justify="right", no_wrap=True)
    table.add_column("transaction", overflow="fold")
    for leg, symbol, tx in (("pay", done.pay_symbol, done.pay), ("receive", done.receive_symbol, done.receive)):
        amount = f"{render.grouped(tx.amount)} {symbol}"
        table.add_row(leg, Text(tx.from_user_id or ""), Text(tx.to_user_id or ""), amount, tx.id)
    return table


def register(app: typer.Typer) -> None:
    app.command(cls=AmountCommand)(exchange)
