"""The ``tokenbank`` Typer app: global options on the callback, commands from :mod:`ledger` and :mod:`demo`."""

from __future__ import annotations

from typing import Annotated

import typer

from tokenbank._version import __version__
from tokenbank.cli import (
    account,
    bench,
    chain,
    demo,
    exchange,
    export,
    ledger,
    lots,
    migrate,
    split,
    stake,
    sync,
    token,
    webhooks,
    worker,
)
from tokenbank.cli.runtime import CliState, configure_logging, log_format_of
from tokenbank.cli.serve import serve

app = typer.Typer(
    name="tokenbank",
    help="An in-app token ledger: balances, transfers, supply and a leaderboard on SQLite, PostgreSQL or Redis.\n\n"
    "Configuration comes from the environment (DATABASE_URL, TOKEN_SYMBOL, TOKEN_STORAGE_MODE, TOKEN_*); "
    "the global options below override it.",
    no_args_is_help=True,
    add_completion=False,
    # Locals in a traceback could show a database URL with its password.
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tokenbank {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Overrides DATABASE_URL, e.g. sqlite+aiosqlite:///tokenbank.db or postgresql+asyncpg://...",
            show_default=False,
        ),
    ] = None,
    symbol: Annotated[
        str | None, typer.Option("--symbol", help="Overrides TOKEN_SYMBOL (the token to work on).", show_default=False)
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode", help="Overrides TOKEN_STORAGE_MODE: sql (alias postgres-only), redis, hybrid.", show_default=False
        ),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="Log to stderr (-vv: debug).")] = 0,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Global options, shared by every command."""
    state = CliState(database_url=database_url, symbol=symbol, mode=mode, debug=debug)
    configure_logging(state.err, verbose, log_format_of(state) if verbose else "text")
    ctx.obj = state


ledger.register(app)
split.register(app)
stake.register(app)
lots.register(app)
exchange.register(app)
chain.register(app)
demo.register(app)
bench.register(app)
export.register(app)
migrate.register(app)
sync.register(app)
token.register(app)
account.register(app)
webhooks.register(app)
worker.register(app)
app.command("serve")(serve)


def main() -> None:
    """Console-script entry point (``tokenbank``)."""
    app(prog_name="tokenbank")
