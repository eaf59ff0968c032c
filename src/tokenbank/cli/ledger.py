"""The ledger commands: init, balance, transfer, mint, burn, hold, capture, void, reverse, top, history, supply,
verify."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import typer
from rich.text import Text
from typer.core import TyperCommand

from tokenbank.bank import TokenBank
from tokenbank.cli import render, token
from tokenbank.cli.runtime import mask_url, parse_amount, state_of
from tokenbank.models import Check, Hold, TokenInfo, Transaction, TransactionType, VerifyReport
from tokenbank.services.event_payloads import transaction_data

T = TypeVar("T")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (amounts as strings).")]
Reason = Annotated[str | None, typer.Option("--reason", help="Why; stored with the transaction.", show_default=False)]
Amount = Annotated[
    str, typer.Argument(metavar="AMOUNT", help="Exact decimal amount, e.g. 12.50 (no exponents).", show_default=False)
]
IdempotencyKey = Annotated[
    str | None, typer.Option(help="Retry-safe key: the same key and request apply once.", show_default=False)
]
Metadata = Annotated[str | None, typer.Option(help="A JSON object stored with the transaction.", show_default=False)]
HoldId = Annotated[str, typer.Argument(metavar="HOLD_ID", help="The id the hold command printed.")]

# "-5", "-0.5", "-1e3": what a negative amount looks like on a command line.
_NEGATIVE_NUMBER = re.compile(r"-[0-9.][0-9.eE+-]*")


class AmountCommand(TyperCommand):
    """A command with an AMOUNT argument: a negative number there reaches the amount check (and its one-line
    ``invalid_amount`` error) instead of being taken for an unknown option."""

    # ctx is Any: the Context class is click's or, in newer Typer releases, Typer's own copy of click.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if any(_NEGATIVE_NUMBER.fullmatch(arg) for arg in args):
            ctx.ignore_unknown_options = True
        return super().parse_args(ctx, args)


def init(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Create the schema and the token (mints TOKEN_INITIAL_SUPPLY once); safe to run again."""
    state = state_of(ctx)
    with state.handled():
        settings = state.settings()
    info = state.run(lambda bank: token.initialized(bank, state), settings=settings, create=True)
    database = mask_url(settings.database_url)
    if as_json:
        render.emit_json({**render.token_dict(info), "database": database})
        return
    state.out.print(render.token_table(info, database))


def balance(
    ctx: typer.Context, user: Annotated[str, typer.Argument(help="Account id.")], as_json: JsonFlag = False
) -> None:
    """Spendable balance of an account, with its held funds and leaderboard rank."""
    state = state_of(ctx)

    async def work(bank: TokenBank) -> tuple[Decimal, Decimal, int | None]:
        return await bank.get_balance(user), await bank.get_held_balance(user), await bank.get_rank(user)

    (spendable, held, rank), symbol = state.run(lambda bank: _with_symbol(bank, work(bank)))
    if as_json:
        render.emit_json(
            {"user_id": user, "balance": render.plain(spendable), "held": render.plain(held), "rank": rank}
        )
        return
    line = Text.assemble((user, "bold"), ": ", (f"{render.grouped(spendable)} {symbol}", "green"))
    if held:
        line.append(f"  (held {render.grouped(held)})", style="yellow")
    line.append(f"  rank {rank}" if rank is not None else "  unranked", style="dim")
    state.out.print(line)


def transfer(
    ctx: typer.Context,
    from_user: Annotated[str, typer.Argument(metavar="FROM", help="Sender account id.")],
    to_user: Annotated[str, typer.Argument(metavar="TO", help="Receiver account id.")],
    amount: Amount,
    idempotency_key: IdempotencyKey = None,
    metadata: Metadata = None,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Move AMOUNT from FROM to TO, atomically."""
    shown = _write(
        ctx, amount, metadata,
        lambda bank, value, meta: bank.transfer(
            from_user, to_user, value, idempotency_key=idempotency_key, metadata=meta, reason=reason
        ),
    )  # fmt: skip
    _show_transaction(ctx, shown, as_json)


def mint(
    ctx: typer.Context,
    to_user: Annotated[str, typer.Argument(metavar="TO", help="Receiver account id.")],
    amount: Amount,
    idempotency_key: IdempotencyKey = None,
    metadata: Metadata = None,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Create AMOUNT new tokens in TO (audited; respects the token's max supply)."""
    shown = _write(
        ctx, amount, metadata,
        lambda bank, value, meta: bank.mint(
            to_user, value, reason=reason, idempotency_key=idempotency_key, metadata=meta
        ),
    )  # fmt: skip
    _show_transaction(ctx, shown, as_json)


def burn(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(metavar="USER", help="Account id to burn from.")],
    amount: Amount,
    idempotency_key: IdempotencyKey = None,
    metadata: Metadata = None,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Destroy AMOUNT tokens from USER (audited)."""
    shown = _write(
        ctx, amount, metadata,
        lambda bank, value, meta: bank.burn(user, value, reason=reason, idempotency_key=idempotency_key, metadata=meta),
    )  # fmt: skip
    _show_transaction(ctx, shown, as_json)


def hold(
    ctx: typer.Context,
    from_user: Annotated[str, typer.Argument(metavar="FROM", help="Account whose funds are held.")],
    to_user: Annotated[str, typer.Argument(metavar="TO", help="Account a capture pays.")],
    amount: Amount,
    expires_in: Annotated[
        float,
        typer.Option(
            "--expires-in", metavar="SECONDS", help="Seconds until it is voided by itself.", show_default=False
        ),
    ],
    idempotency_key: IdempotencyKey = None,
    metadata: Metadata = None,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Reserve AMOUNT of FROM's funds for TO (not spendable meanwhile); capture or void it later by its id."""
    shown = _write(
        ctx, amount, metadata,
        lambda bank, value, meta: bank.hold(
            from_user, to_user, value, expires_in=expires_in, idempotency_key=idempotency_key, metadata=meta,
            reason=reason,
        ),
    )  # fmt: skip
    _show_hold(ctx, shown, as_json)


def capture(
    ctx: typer.Context,
    hold_id: HoldId,
    amount: Annotated[
        str | None,
        typer.Argument(
            metavar="[AMOUNT]", help="Pay out only this much and release the rest (default: all).", show_default=False
        ),
    ] = None,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Pay out a pending hold to its receiver, all of it or AMOUNT (the rest goes back to the sender)."""
    state = state_of(ctx)
    with state.handled():
        value = None if amount is None else parse_amount(amount)
    _show_hold(ctx, state.run(lambda bank: _with_symbol(bank, bank.capture(hold_id, value, reason=reason))), as_json)


def void(ctx: typer.Context, hold_id: HoldId, reason: Reason = None, as_json: JsonFlag = False) -> None:
    """Release a pending hold back to its sender."""
    state = state_of(ctx)
    _show_hold(ctx, state.run(lambda bank: _with_symbol(bank, bank.void(hold_id, reason=reason))), as_json)


def reverse(
    ctx: typer.Context,
    transaction_id: Annotated[str, typer.Argument(metavar="TX_ID", help="The transfer to undo.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (required); stored with the reversal.")],
    idempotency_key: IdempotencyKey = None,
    metadata: Metadata = None,
    as_json: JsonFlag = False,
) -> None:
    """Undo a transfer with a correcting transaction (history is never edited; a transfer is reversed once)."""
    state = state_of(ctx)
    meta = _metadata(metadata)
    shown = state.run(
        lambda bank: _with_symbol(
            bank, bank.reverse(transaction_id, reason=reason, idempotency_key=idempotency_key, metadata=meta)
        )
    )
    _show_transaction(ctx, shown, as_json)


def top(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many holders.")] = 10,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many first.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """The leaderboard: highest balances first (the treasury left out)."""
    state = state_of(ctx)
    holders, symbol = state.run(lambda bank: _with_symbol(bank, bank.get_top_holders(limit, offset)))
    if as_json:
        render.emit_json([render.holder_dict(h) for h in holders])
        return
    state.out.print(render.holders_table(holders, symbol))


def history(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Account id.")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="The next cursor a previous page printed.")] = None,
    types: Annotated[
        list[TransactionType] | None, typer.Option("--type", help="Only these types (repeatable).", show_default=False)
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """An account's transactions, newest first, one page at a time."""
    state = state_of(ctx)
    page, symbol = state.run(
        lambda bank: _with_symbol(
            bank, bank.transactions.get_transaction_history(user, limit=limit, cursor=cursor, types=types)
        )
    )
    if as_json:
        render.emit_json(
            {
                "user_id": user,
                "items": [transaction_data(tx) for tx in page.items],
                "next_cursor": page.next_cursor,
            }
        )
        return
    state.out.print(render.history_table(user, page.items, symbol))
    if page.next_cursor:
        state.out.print(Text(f"more: --cursor {page.next_cursor}", style="dim"))


def supply(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Total, circulating and maximum supply."""
    state = state_of(ctx)

    async def work(bank: TokenBank) -> tuple[TokenInfo, Decimal]:
        return await bank.get_token_info(), await bank.get_circulating_supply()

    info, circulating = state.run(work)
    if as_json:
        render.emit_json(render.supply_dict(info, circulating))
        return
    state.out.print(render.supply_table(info, circulating))


def verify(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    chain_only: Annotated[bool, typer.Option("--chain", help="Only the hash chain check(s).")] = False,
) -> None:
    """Check the ledger's invariants and its hash chain in the store; exit 1 if any check fails."""
    state = state_of(ctx)
    report = state.run(_chain_report if chain_only else (lambda bank: bank.verify()))
    if as_json:
        render.emit_json(render.verify_dict(report))
    else:
        state.out.print(render.verify_table(report))
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    for command in (init, balance, transfer, mint, burn, hold, capture, void, reverse, top, history, supply, verify):
        with_amount = command in (transfer, mint, burn, hold, capture)
        app.command(cls=AmountCommand if with_amount else None)(command)


# helpers -------------------------------------------------------------------------------------------------------
async def _chain_report(bank: TokenBank) -> VerifyReport:
    await bank.get_token_info()  # a missing token is an error here too, not an empty chain
    return VerifyReport([Check(r.label, r.ok, r.detail) for r in await bank.chain.verify()])


def _write(
    ctx: typer.Context,
    amount: str,
    metadata: str | None,
    call: Callable[[TokenBank, Decimal, dict[str, Any] | None], Awaitable[T]],
) -> tuple[T, str]:
    """Check AMOUNT and --metadata first (one-line errors, nothing opened), then run one write."""
    state = state_of(ctx)
    meta = _metadata(metadata)
    with state.handled():
        value = parse_amount(amount)
    return state.run(lambda bank: _with_symbol(bank, call(bank, value, meta)))


async def _with_symbol(bank: TokenBank, result: Awaitable[T]) -> tuple[T, str]:
    """A result with the token symbol, for the table's unit."""
    return await result, bank.settings.symbol


def _metadata(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint="'--metadata'") from None
    if not isinstance(value, dict):
        raise typer.BadParameter("must be a JSON object, e.g. '{\"order\": 42}'", param_hint="'--metadata'")
    return value


def _show_hold(ctx: typer.Context, shown: tuple[Hold, str], as_json: bool) -> None:
    held, symbol = shown
    if as_json:
        render.emit_json(render.hold_dict(held))
        return
    state_of(ctx).out.print(render.hold_table(held, symbol))


def _show_transaction(ctx: typer.Context, shown: tuple[Transaction, str], as_json: bool) -> None:
    tx, symbol = shown
    if as_json:
        render.emit_json(transaction_data(tx))
        return
    state_of(ctx).out.print(render.transaction_table(tx, symbol))
