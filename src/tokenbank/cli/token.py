"""``tokenbank token show|configure``: the stored token's settings, and the one way to change them.

Settings (``TOKEN_NAME``, ``TOKEN_MAX_SUPPLY``...) shape a token when ``tokenbank init`` creates it; afterwards the
stored token decides, and only ``tokenbank token configure`` (or ``TokenBank.configure_token``) changes it, with
an audit entry.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from tokenbank.bank import TokenBank
from tokenbank.cli import render
from tokenbank.cli.runtime import CliState, describe_store, parse_amount, state_of
from tokenbank.models import TokenInfo
from tokenbank.token_config import UNSET

app = typer.Typer(
    name="token",
    help="Show or change the stored token's settings (name, emoji, max supply, treasury, leaderboard exclusions).",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (amounts as strings).")]
_FIELDS = ("name", "emoji", "treasury_account", "max_supply", "leaderboard_exclude")


def token_json(info: TokenInfo, store: str) -> dict[str, Any]:
    return {**render.token_dict(info), "leaderboard_exclude": list(info.leaderboard_exclude), "store": store}


@app.command()
def show(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The token as stored, with its leaderboard exclusions."""
    state = state_of(ctx)
    info, store = state.run(_info_and_store)
    if as_json:
        render.emit_json(token_json(info, store))
        return
    state.out.print(render.token_table(info, store))
    state.out.print(Text.assemble(("leaderboard exclude: ", "bold"), _shown("leaderboard_exclude", info)))


@app.command()
def configure(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", help="New display name.", show_default=False)] = None,
    emoji: Annotated[str | None, typer.Option("--emoji", help="New emoji.", show_default=False)] = None,
    no_emoji: Annotated[bool, typer.Option("--no-emoji", help="Remove the emoji.")] = False,
    max_supply: Annotated[
        str | None,
        typer.Option("--max-supply", metavar="AMOUNT", help="New cap on the total supply.", show_default=False),
    ] = None,
    no_max_supply: Annotated[bool, typer.Option("--no-max-supply", help="Remove the cap on the total supply.")] = False,
    treasury: Annotated[
        str | None, typer.Option("--treasury", help="New treasury account id.", show_default=False)
    ] = None,
    leaderboard_exclude: Annotated[
        str | None,
        typer.Option(
            "--leaderboard-exclude",
            metavar="A,B",
            help="Accounts left out of the leaderboard and circulating supply, comma-separated ('' for none).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change the stored token's settings (only the options given; each change is audited). A max supply below
    the total supply is refused and nothing changes."""
    state = state_of(ctx)
    if max_supply is not None and no_max_supply:
        raise typer.BadParameter("give --max-supply or --no-max-supply, not both", param_hint="'--max-supply'")
    if emoji is not None and no_emoji:
        raise typer.BadParameter("give --emoji or --no-emoji, not both", param_hint="'--emoji'")
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if emoji is not None or no_emoji:
        changes["emoji"] = emoji
    if treasury is not None:
        changes["treasury_account"] = treasury
    if max_supply is not None or no_max_supply:
        with state.handled():
            changes["max_supply"] = None if no_max_supply else parse_amount(max_supply or "")
    if leaderboard_exclude is not None:
        changes["leaderboard_exclude"] = [part.strip() for part in leaderboard_exclude.split(",") if part.strip()]
    if not changes:
        raise typer.BadParameter("nothing to change: give at least one option (see --help)")

    async def work(bank: TokenBank) -> tuple[TokenInfo, TokenInfo, str]:
        before = await bank.get_token_info()
        after = await bank.configure_token(**{key: changes.get(key, UNSET) for key in _FIELDS})
        return before, after, describe_store(bank.settings)

    before, after, store = state.run(work)
    changed = {
        field: {"from": _value(field, before), "to": _value(field, after)}
        for field in _FIELDS
        if _value(field, before) != _value(field, after)
    }
    if as_json:
        render.emit_json({"changed": changed, "token": token_json(after, store)})
        return
    _print_changes(state, before, after, changed)


def _print_changes(state: CliState, before: TokenInfo, after: TokenInfo, changed: dict[str, Any]) -> None:
    if not changed:
        state.out.print(f"token {after.symbol}: nothing changed (the stored values are already these)")
        return
    state.out.print(Text(f"token {after.symbol} configured:", style="bold"))
    for field in changed:
        state.out.print(
            Text.assemble(f"  {field}: ", _shown(field, before), " -> ", (_shown(field, after), "green")),
            soft_wrap=True,
        )


def _value(field: str, info: TokenInfo) -> Any:
    value = getattr(info, field)
    if field == "max_supply":
        return None if value is None else render.plain(value)
    if field == "leaderboard_exclude":
        return list(value)
    return value


def _shown(field: str, info: TokenInfo) -> str:
    value = _value(field, info)
    if value is None:
        return "unlimited" if field == "max_supply" else "none"
    if isinstance(value, list):
        return ", ".join(value) if value else "(no account)"
    return str(value)


async def _info_and_store(bank: TokenBank) -> tuple[TokenInfo, str]:
    return await bank.get_token_info(), describe_store(bank.settings)


async def initialized(bank: TokenBank, state: CliState) -> TokenInfo:
    """What ``tokenbank init`` shows: the token; and, if it existed already, that it was left as stored and
    which settings it ignored (on stderr, so that ``--json`` stays parseable)."""
    info = await bank.get_token_info()
    if bank.token_created:
        return info
    lines = [f"token '{info.symbol}' already exists in {describe_store(bank.settings)}; left as stored"]
    lines += [f"  not applied: {drift.describe()}" for drift in bank.settings_drift]
    if bank.settings_drift:
        lines.append("  to change the stored token: tokenbank token configure --help")
    for line in lines:
        state.err.print(Text(line, style="yellow"), soft_wrap=True)
    return info


def register(root: typer.Typer) -> None:
    root.add_typer(app)
