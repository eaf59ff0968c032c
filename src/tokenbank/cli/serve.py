"""``tokenbank serve``: the REST API (``tokenbank.integrations.fastapi.create_app``) under uvicorn.

Every write (each POST, and the PUT of an account's limits) needs ``Authorization: Bearer $TOKENBANK_API_KEY``.
Without that variable the server refuses to start (exit code 2), unless it is bound to loopback (127.0.0.1, ::1,
localhost) and ``--insecure-local`` is given.
The key is never printed or logged. ``--workers N`` runs N uvicorn processes on the same port, each with its own
bank on the same store (the stores are built for many writers; background loops are leader-elected or idempotent).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tokenbank.bank import TokenBank
from tokenbank.cli.runtime import state_of
from tokenbank.errors import ConfigurationError
from tokenbank.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

API_KEY_VARIABLE = "TOKENBANK_API_KEY"
SETTINGS_VARIABLE = "TOKENBANK_SERVE_SETTINGS"
"""How ``serve --workers N`` hands its settings (environment and command-line overrides) to each worker."""
EXIT_REFUSED = 2
SHUTDOWN_GRACE_SECONDS = 5
"""On stop, requests still running after this many seconds are cancelled (event streams would otherwise hold the
server open until every client leaves)."""
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1, also as ``[::1]``)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def refusal(host: str, insecure_local: bool) -> str | None:
    """Why the server must not start with these options and no API key (None: it may start)."""
    if os.environ.get(API_KEY_VARIABLE):
        return None
    if insecure_local and is_loopback(host):
        return None
    if insecure_local:
        return (
            f"{API_KEY_VARIABLE} is not set and --insecure-local only works on a loopback address "
            f"(127.0.0.1, ::1, localhost), not on {host!r}; set {API_KEY_VARIABLE} to serve on {host!r}"
        )
    return (
        f"{API_KEY_VARIABLE} is not set, so anyone reaching {host!r} could move tokens; set {API_KEY_VARIABLE} "
        "(clients send 'Authorization: Bearer <key>'), or bind to 127.0.0.1 and pass --insecure-local"
    )


def run_server(
    host: str = "127.0.0.1",
    port: int = 8000,
    insecure_local: bool = False,
    *,
    settings: Settings | None = None,
    log_level: str = "info",
    access_log: bool = True,
    workers: int = 1,
) -> None:
    """Serve the API until interrupted, on ``settings`` (default: from the environment). Raises
    ``typer.Exit(2)`` after one line on stderr when the key is missing (see :func:`refusal`), ConfigurationError
    for bad settings or a missing ``fastapi`` extra, and StorageUnavailableError / StorageError when the store
    cannot be opened (before the server starts, so the caller reports one line rather than a traceback)."""
    problem = refusal(host, insecure_local)
    if problem is not None:
        typer.echo(f"error [api_key_required]: refusing to start: {problem}", err=True)
        raise typer.Exit(EXIT_REFUSED)
    if log_level not in LOG_LEVELS:
        raise ConfigurationError(f"--log-level: must be one of {', '.join(LOG_LEVELS)}")
    try:
        import uvicorn

        from tokenbank.integrations.fastapi import create_app
    except ImportError:
        raise ConfigurationError("serve needs FastAPI and uvicorn: pip install 'tokenbank[fastapi]'") from None

    settings = settings or Settings.load()
    options: dict[str, Any] = {
        "log_level": log_level,
        "access_log": access_log,
        "server_header": False,
        "proxy_headers": False,
        # An open event stream (a dashboard tab, a balance subscriber) never ends by itself: stop waiting for it.
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_SECONDS,
    }
    if workers > 1:
        asyncio.run(_check_opens(settings))  # a store that is down: one error here, not N tracebacks
        os.environ[SETTINGS_VARIABLE] = settings.model_dump_json()
        uvicorn.run(f"{__name__}:worker_app", factory=True, host=host, port=port, workers=workers, **options)
        return
    api_key = os.environ.get(API_KEY_VARIABLE) or None
    bank = TokenBank(settings)

    class Server(uvicorn.Server):
        # The bank opens before uvicorn starts, on uvicorn's own event loop: a store that is down at start is
        # then one error for the caller to report, where a failed app lifespan is a traceback in uvicorn's log.
        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            try:
                await bank.open()
                await super().serve(sockets)
            finally:
                await bank.close()

    app = create_app(api_key=api_key, bank=bank, allow_unauthenticated=api_key is None)
    Server(uvicorn.Config(app, host=host, port=port, lifespan="on", **options)).run()


async def _check_opens(settings: Settings) -> None:
    async with TokenBank(settings):
        pass


def worker_app() -> FastAPI:
    """The app of one ``serve --workers N`` process (a uvicorn factory): the parent's settings, its own bank,
    opened by the app's lifespan."""
    from tokenbank.integrations.fastapi import create_app

    settings = Settings.load(**json.loads(os.environ[SETTINGS_VARIABLE]))
    return create_app(settings, allow_unauthenticated=not os.environ.get(API_KEY_VARIABLE))


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to bind; anything but loopback needs the API key.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    insecure_local: Annotated[
        bool,
        typer.Option(
            "--insecure-local",
            help=f"Serve without {API_KEY_VARIABLE} (writes unauthenticated); only on a loopback address.",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option("--log-level", help=f"uvicorn log level: {', '.join(LOG_LEVELS)}.")] = (
        "info"
    ),
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log each request.")] = True,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="uvicorn worker processes (each with its own bank).")
    ] = 1,
) -> None:
    """Run the REST API with uvicorn. Writes need 'Authorization: Bearer $TOKENBANK_API_KEY'."""
    state = state_of(ctx)
    with state.handled():  # the key check comes first inside run_server; typer.Exit passes through
        settings = None if refusal(host, insecure_local) else state.settings()
        run_server(
            host, port, insecure_local, settings=settings, log_level=log_level, access_log=access_log, workers=workers
        )


__all__ = ["API_KEY_VARIABLE", "EXIT_REFUSED", "is_loopback", "refusal", "run_server", "serve", "worker_app"]
