"""Plumbing every command shares: global options, the bank's lifetime, strict amounts and one-line errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tokenbank.amounts import to_decimal
from tokenbank.bank import TokenBank
from tokenbank.errors import ConfigurationError, InvalidAmountError, TokenBankError, TokenNotInitializedError
from tokenbank.logs import JsonFormatter
from tokenbank.settings import Settings, StorageMode

T = TypeVar("T")

_URL_VARIABLES = ("DATABASE_URL", "DATABASE_READ_URL", "REDIS_URL")
_log_handler: logging.Handler | None = None


@dataclass
class CliState:
    """What the root callback parsed; commands find it in ``ctx.obj``."""

    database_url: str | None = None
    symbol: str | None = None
    mode: str | None = None
    debug: bool = False
    out: Console = field(default_factory=Console)
    err: Console = field(default_factory=lambda: Console(stderr=True))

    def overrides(self) -> dict[str, Any]:
        """The global options that were given, as Settings field names (they win over the environment)."""
        given = {"database_url": self.database_url, "symbol": self.symbol, "storage_mode": self.mode}
        return {name: value for name, value in given.items() if value is not None}

    def settings(self, **extra: Any) -> Settings:
        """Settings from the environment, overridden by the global options, then by ``extra``. A command never
        creates a token by accident: ``auto_create`` is off unless ``extra`` turns it on (``init`` and ``demo``
        do, through :meth:`run`'s ``create``). Raises ConfigurationError naming the variable."""
        return Settings.load(**{**self.overrides(), "auto_create": False, **extra})

    def secrets(self) -> list[str]:
        """Passwords of every URL this run may know, to keep them out of anything printed."""
        found = []
        for url in (self.database_url, *(os.environ.get(name) for name in _URL_VARIABLES)):
            if url:
                with contextlib.suppress(ArgumentError, ValueError):
                    password = make_url(url).password
                    if password:
                        found.append(str(password))
        return found

    def fail(self, code: str, message: str) -> NoReturn:
        """Print ``error [code]: message`` as one red line on stderr and exit 1."""
        for secret in self.secrets():
            message = message.replace(secret, "***")
        self.err.print(Text(f"error [{code}]: {' '.join(message.split())}", style="bold red"), soft_wrap=True)
        raise typer.Exit(1)

    @contextlib.contextmanager
    def handled(self) -> Iterator[None]:
        """Turn every error inside the block into one line and an exit code, never a traceback."""
        try:
            yield
        except TokenNotInitializedError as exc:
            try:
                message = missing_token(self.settings())
            except TokenBankError:
                message = exc.message
            self.fail(exc.code, message)
        except TokenBankError as exc:
            self.fail(exc.code, exc.message)
        except KeyboardInterrupt:
            self.err.print(Text("interrupted", style="bold red"))
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if self.debug:
                raise
            self.fail("internal_error", f"{type(exc).__name__}: {exc} (rerun with --debug for the traceback)")

    def run(
        self, work: Callable[[TokenBank], Awaitable[T]], *, settings: Settings | None = None, create: bool = False
    ) -> T:
        """Open a bank, run ``work`` on it, close it; errors become one line (see :meth:`handled`).
        Only with ``create`` may a missing token (or SQLite file) be created; without it, a missing token is
        ``error [token_not_initialized]: token 'SYM' does not exist in <store>; run tokenbank init``.
        Raises typer.Exit."""
        with self.handled():
            settings = settings or self.settings()
            settings = settings.model_copy(update={"auto_create": create})
            if settings.storage_mode is StorageMode.SQL:  # redis mode never opens DATABASE_URL
                check_sqlite_path(settings.database_url, create=create)
            try:
                return asyncio.run(with_bank(settings, work))
            except TokenNotInitializedError:
                self.fail(TokenNotInitializedError.code, missing_token(settings))
        raise AssertionError("unreachable")  # handled() never swallows an error


def state_of(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):  # a command invoked without the root callback (only in odd embeddings)
        obj = CliState()
        ctx.find_root().obj = obj
    return obj


async def with_bank(settings: Settings, work: Callable[[TokenBank], Awaitable[T]]) -> T:
    bank = TokenBank(settings)
    try:
        await bank.open()
        return await work(bank)
    finally:
        await bank.close()


def parse_amount(text: str) -> Decimal:
    """The amount, exact, checked by the library's own rule before anything is opened. Raises InvalidAmountError."""
    value = to_decimal(text.strip())
    if value <= 0:
        raise InvalidAmountError(f"amount must be positive, got {text!r}")
    return value


def mask_url(url: str) -> str:
    """The URL with its password hidden, fit for printing."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<invalid URL>"


def missing_token(settings: Settings) -> str:
    """What every command but ``init`` and ``demo`` says when the token does not exist."""
    return f"token '{settings.symbol}' does not exist in {describe_store(settings)}; run tokenbank init"


def describe_store(settings: Settings) -> str:
    """Where the token lives, fit for printing (no password): the database URL masked, the Redis server as
    ``redis://host:port/db``, both in hybrid mode."""
    database = mask_url(settings.database_url)
    if settings.database_schema:
        database += f" (schema {settings.database_schema})"
    if settings.storage_mode is StorageMode.SQL:
        return database
    redis = _redis_address(settings.redis_url)
    return redis if settings.storage_mode is StorageMode.REDIS else f"{redis} and {database}"


def _redis_address(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    db = parts.path.strip("/") or "0"
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{port or 6379}/{db}"


def check_sqlite_path(url: str, *, create: bool) -> None:
    """Raise ConfigurationError if ``url`` names a SQLite file that is not there (a typo, or no ``init`` yet) or,
    with ``create``, one whose directory does not exist."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return  # the library reports a bad URL itself
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if create:
        if not path.parent.is_dir():
            raise ConfigurationError(f"DATABASE_URL: directory {path.parent} does not exist")
    elif not path.exists():
        raise ConfigurationError(f"DATABASE_URL: no database at {database}; run 'tokenbank init' to create it")


def configure_logging(console: Console, verbose: int, log_format: str = "text") -> None:
    """Library log lines go to stderr with ``-v`` (INFO) or ``-vv`` (DEBUG), one JSON object per line with
    ``log_format`` "json" (TOKEN_LOG_FORMAT); otherwise nowhere, so that an error is reported once, by the CLI."""
    global _log_handler
    logger = logging.getLogger("tokenbank")
    if _log_handler is not None:
        logger.removeHandler(_log_handler)
    handler: logging.Handler
    if verbose and log_format == "json":
        handler = logging.StreamHandler(console.file)
        handler.setFormatter(JsonFormatter())
        logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    elif verbose:
        handler = RichHandler(console=console, show_path=False)
        logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    else:
        handler = logging.NullHandler()
        logger.setLevel(logging.NOTSET)
    logger.addHandler(handler)
    _log_handler = handler


def log_format_of(state: CliState) -> str:
    """TOKEN_LOG_FORMAT as the settings read it; "text" when the settings are invalid (the command then reports
    the configuration error itself)."""
    try:
        return state.settings().log_format
    except ConfigurationError:
        return "text"
