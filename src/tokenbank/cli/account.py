"""``tokenbank account show|freeze|unfreeze|close|limits``: one account's controls, for operators.

Each change goes through the bank (and so through the store's own checks) and is audited; the account is printed
as it is afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tokenbank.bank import TokenBank
from tokenbank.cli import render
from tokenbank.cli.runtime import parse_amount, state_of
from tokenbank.models import AccountInfo

app = typer.Typer(
    name="account",
    help="One account's controls: show, freeze, unfreeze, close, limits (each change audited).",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (amounts as strings).")]
User = Annotated[str, typer.Argument(metavar="USER", help="Account id.")]


def account_dict(info: AccountInfo) -> dict[str, Any]:
    """The account as JSON, the same shape as the REST API's ``GET /accounts/{user_id}``."""
    frozen, limit = info.frozen, info.spend_limit
    return {
        "user_id": info.user_id,
        "balance": render.plain(info.balance),
        "held": render.plain(info.held),
        "frozen": None if frozen is None else {
            "debits": frozen.debits, "credits": frozen.credits, "reason": frozen.reason,
            "until": None if frozen.until is None else render.iso_time(frozen.until),
        },
        "closed": info.closed,
        "max_balance": None if info.max_balance is None else render.plain(info.max_balance),
        "spend_limit": None if limit is None else {"amount": render.plain(limit.amount), "seconds": limit.seconds},
        "spent_in_window": render.plain(info.spent_in_window),
        "overdraft": None if info.overdraft is None else render.plain(info.overdraft),
    }  # fmt: skip


def account_table(info: AccountInfo, symbol: str) -> Table:
    table = Table(title=f"account {escape(info.user_id)}", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("balance", f"{render.grouped(info.balance)} {symbol}")
    table.add_row("held", f"{render.grouped(info.held)} {symbol}")
    frozen = info.frozen
    if frozen is None:
        table.add_row("frozen", "no")
    else:
        what = "debits and credits" if frozen.debits and frozen.credits else "debits" if frozen.debits else "credits"
        until = "until unfrozen" if frozen.until is None else f"until {render.iso_time(frozen.until)}"
        table.add_row("frozen", Text(f"{what}, {until}: {frozen.reason or ''}", style="bold red"))
    table.add_row("closed", Text("yes", style="bold red") if info.closed else "no")
    table.add_row("max balance", "none" if info.max_balance is None else f"{render.grouped(info.max_balance)} {symbol}")
    table.add_row("overdraft", "none" if info.overdraft is None else f"{render.grouped(info.overdraft)} {symbol}")
    limit = info.spend_limit
    if limit is None:
        table.add_row("spend limit", "none")
    else:
        table.add_row(
            "spend limit",
            f"{render.grouped(limit.amount)} {symbol} per {limit.seconds} s "
            f"(spent {render.grouped(info.spent_in_window)} in the current window)",
        )
    return table


def _change(ctx: typer.Context, call: Callable[[TokenBank], Awaitable[AccountInfo]], as_json: bool) -> None:
    """Run one read or change, then print the account."""
    state = state_of(ctx)

    async def work(bank: TokenBank) -> tuple[AccountInfo, str]:
        return await call(bank), bank.settings.symbol

    info, symbol = state.run(work)
    if as_json:
        render.emit_json(account_dict(info))
        return
    state.out.print(account_table(info, symbol))


@app.command()
def show(ctx: typer.Context, user: User, as_json: JsonFlag = False) -> None:
    """The account's balances and controls: freeze, closed, max balance, spend limit and what its window spent."""
    _change(ctx, lambda bank: bank.get_account(user), as_json)


@app.command()
def freeze(
    ctx: typer.Context,
    user: User,
    reason: Annotated[str, typer.Option("--reason", help="Why (required); stored with the freeze and audited.")],
    credits: Annotated[bool, typer.Option("--credits", help="Stop what it receives instead of what it sends.")] = False,
    both: Annotated[bool, typer.Option("--both", help="Stop what it sends and what it receives.")] = False,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", metavar="ISO-8601", help="End by itself then, e.g. 2030-01-01T00:00:00Z.", show_default=False
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Stop what USER sends (--credits: what it receives; --both: both) until --until or unfreeze; replaces a freeze."""
    if credits and both:
        raise typer.BadParameter("give --credits or --both, not both", param_hint="'--credits'")
    ends = None if until is None else _moment(until)
    debits = not credits
    credits = credits or both
    _change(ctx, lambda bank: bank.freeze(user, debits=debits, credits=credits, reason=reason, until=ends), as_json)


@app.command()
def unfreeze(ctx: typer.Context, user: User, as_json: JsonFlag = False) -> None:
    """End USER's freeze (nothing happens without one)."""
    _change(ctx, lambda bank: bank.unfreeze(user), as_json)


@app.command()
def close(ctx: typer.Context, user: User, as_json: JsonFlag = False) -> None:
    """Close USER for good: every later write to or from it is refused. It must hold nothing (balance or held)."""
    _change(ctx, lambda bank: bank.close_account(user), as_json)


@app.command()
def limits(
    ctx: typer.Context,
    user: User,
    max_balance: Annotated[
        str | None,
        typer.Option(
            "--max-balance", metavar="AMOUNT", help="Refuse credits that would take it above.", show_default=False
        ),
    ] = None,
    spend: Annotated[
        str | None,
        typer.Option(
            "--spend",
            metavar="AMOUNT/SECONDS",
            help="At most AMOUNT spent (transfers, burns, holds) in any rolling window of SECONDS, e.g. 500/86400.",
            show_default=False,
        ),
    ] = None,
    overdraft: Annotated[
        str | None,
        typer.Option(
            "--overdraft", metavar="AMOUNT", help="Let debits take the balance down to -AMOUNT.", show_default=False
        ),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every limit.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Set USER's limits, replacing them all: a limit not given is removed (--clear removes them all)."""
    given = (max_balance, spend, overdraft)
    if clear and any(value is not None for value in given):
        raise typer.BadParameter("--clear removes every limit: give it alone", param_hint="'--clear'")
    if not clear and all(value is None for value in given):
        raise typer.BadParameter("give --max-balance, --spend, --overdraft or --clear (see --help)")
    spend_text = None if spend is None else _window(spend)
    state = state_of(ctx)
    with state.handled():  # a bad amount: one line, nothing opened
        maximum = None if max_balance is None else parse_amount(max_balance)
        window = None if spend_text is None else (parse_amount(spend_text[0]), spend_text[1])
        floor = None if overdraft is None else parse_amount(overdraft)
    _change(
        ctx,
        lambda bank: bank.set_limits(user, max_balance=maximum, spend_per_window=window, overdraft=floor),
        as_json,
    )


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("not an ISO-8601 time, e.g. 2030-01-01T00:00:00Z", param_hint="'--until'") from None
    if moment.tzinfo is None:
        raise typer.BadParameter("needs a UTC offset, e.g. 2030-01-01T00:00:00Z or +02:00", param_hint="'--until'")
    return moment


def _window(text: str) -> tuple[str, int]:
    amount, slash, seconds = text.partition("/")
    if not slash or not re.fullmatch(r"[0-9]+", seconds.strip()):
        raise typer.BadParameter("must be AMOUNT/SECONDS, e.g. 500/86400", param_hint="'--spend'")
    return amount, int(seconds)


def register(root: typer.Typer) -> None:
    root.add_typer(app)
