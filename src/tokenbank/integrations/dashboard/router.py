"""``create_dashboard()``: the operator dashboard as a FastAPI ``APIRouter``, closed unless told otherwise.

Like ``create_router``, it needs a guard: an ``authorize`` hook, router ``dependencies``, or an explicit
``allow_anonymous=True``. ``authorize(request, "dashboard.read", user_id)`` runs before the page and before every
data endpoint: with ``user_id=None`` for token-wide figures (supply, volume, leaderboard, live feed, health) and
with the account's id for an account lookup. The static files (script, style sheet, icon) carry no data and are
served without the hook (``dependencies`` still apply to them).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request
from fastapi.params import Depends as DependsParam
from starlette.responses import HTMLResponse, Response

from tokenbank.bank import TokenBank
from tokenbank.errors import ConfigurationError
from tokenbank.ids import MAX_ACCOUNT_ID_LENGTH
from tokenbank.integrations.dashboard import data
from tokenbank.integrations.dashboard.live import feed_stream
from tokenbank.integrations.dashboard.page import ASSETS, asset, render_page
from tokenbank.integrations.fastapi.access import Authorize
from tokenbank.integrations.fastapi.field_types import CURSOR_PATTERN, ID_PATTERN
from tokenbank.integrations.fastapi.lifespan import get_token_bank
from tokenbank.integrations.fastapi.sse import EventStreamResponse

DASHBOARD_READ = "dashboard.read"
"""The ``action`` the dashboard passes to ``authorize``, for the page and each of its data endpoints."""
BankSource = TokenBank | Callable[[], TokenBank | Awaitable[TokenBank]]
"""An opened bank, or a function (sync or async) returning one for each request."""

MAX_SEQ = 2**63 - 1
UserId = Annotated[str, Path(min_length=1, max_length=MAX_ACCOUNT_ID_LENGTH, pattern=ID_PATTERN)]


def create_dashboard(
    bank: BankSource | None = None,
    *,
    authorize: Authorize | None = None,
    dependencies: Sequence[DependsParam] | None = None,
    allow_anonymous: bool = False,
    prefix: str = "/dashboard",
    title: str = "tokenbank dashboard",
    leaderboard_size: int = 10,
    feed_size: int = 25,
    history_page_size: int = 20,
    volume_hours: int = 24,
    refresh_seconds: float = 5.0,
    poll_interval: float = 0.5,
    sse_keepalive: float = 15.0,
) -> APIRouter:
    """The dashboard at ``prefix`` (``GET /dashboard``), its assets under ``prefix/static/`` and its data under
    ``prefix/api/``. ``bank``: the bank to show, or a function returning it; by default the app's own
    (``app.state.token_bank``, see ``token_bank_lifespan``), as for ``create_router``. Install the app's
    ``install_error_handlers(app)`` for ``{code, message}`` error bodies.

    ``leaderboard_size``, ``feed_size`` (rows kept in the live feed), ``history_page_size`` (rows per page of an
    account lookup) and ``volume_hours`` size the page; it re-reads supply, leaderboard, volume and health every
    ``refresh_seconds`` and the live feed looks for new transactions every ``poll_interval`` seconds.

    Raises ConfigurationError without a guard, for a ``prefix`` that does not start with ``/`` (or ends with
    one), or for a size or interval out of range."""
    if authorize is None and not dependencies and not allow_anonymous:
        raise ConfigurationError(
            "create_dashboard: the dashboard shows every account's balance and transactions to anyone who "
            "reaches the app; pass authorize=<hook>, dependencies=[Depends(<your authentication>)], or "
            "allow_anonymous=True (demos and loopback-only servers)"
        )
    if not prefix.startswith("/") or prefix.endswith("/"):
        raise ConfigurationError(f"create_dashboard: prefix must start with '/' and not end with one, got {prefix!r}")
    sizes = {"leaderboard_size": leaderboard_size, "feed_size": feed_size, "history_page_size": history_page_size}
    for name, size in {**sizes, "volume_hours": volume_hours}.items():
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1000:
            raise ConfigurationError(f"create_dashboard: {name} must be an int from 1 to 1000")
    intervals = {"refresh_seconds": refresh_seconds, "poll_interval": poll_interval, "sse_keepalive": sse_keepalive}
    for name, seconds in intervals.items():
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0.05 <= seconds <= 3600:
            raise ConfigurationError(f"create_dashboard: {name} must be a number of seconds from 0.05 to 3600")

    bank_for = _bank_resolver(bank)
    router = APIRouter(prefix=prefix, dependencies=list(dependencies or ()), include_in_schema=False)

    async def check(request: Request, user_id: str | None = None) -> None:
        if authorize is not None:
            outcome = authorize(request, DASHBOARD_READ, user_id)
            if inspect.isawaitable(outcome):
                await outcome

    async def allowed(request: Request, user_id: str | None = None) -> TokenBank:
        """Run the hook, then find the bank (a refused request never touches it)."""
        await check(request, user_id)
        return await bank_for(request)

    @router.get("", response_class=HTMLResponse)
    async def page(request: Request) -> HTMLResponse:
        await check(request)
        settings = {**sizes, "refresh_ms": round(refresh_seconds * 1000)}
        return render_page(request.url.path.rstrip("/"), title=title, settings=settings)

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, detail={"code": "not_found", "message": f"no dashboard file {name!r}"})
        return asset(name)

    @router.get("/api/overview")
    async def overview(request: Request) -> data.Json:
        bank = await allowed(request)
        return await data.overview(bank)

    @router.get("/api/health")
    async def health(request: Request) -> data.Json:
        bank = await allowed(request)
        return await data.health(bank)

    @router.get("/api/volume")
    async def volume(request: Request) -> data.Json:
        bank = await allowed(request)
        return await data.volume(bank, volume_hours)

    @router.get("/api/leaderboard")
    async def leaderboard(request: Request) -> data.Json:
        bank = await allowed(request)
        return await data.leaderboard(bank, leaderboard_size)

    @router.get("/api/feed")
    async def feed(request: Request) -> data.Json:
        bank = await allowed(request)
        return await data.feed(bank, feed_size)

    @router.get("/api/feed/stream", response_class=EventStreamResponse)
    async def stream(
        request: Request,
        after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
    ) -> EventStreamResponse:
        bank = await allowed(request)
        # A reconnecting EventSource sends the last id it saw: resume after it (anything else is ignored).
        if last_event_id is not None and last_event_id.isascii() and last_event_id.isdigit():
            after = min(int(last_event_id), MAX_SEQ)
        return await feed_stream(bank, after, interval=poll_interval, keepalive=sse_keepalive)

    @router.get("/api/accounts/{user_id}")
    async def account(
        request: Request,
        user_id: UserId,
        cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = history_page_size,
    ) -> data.Json:
        bank = await allowed(request, user_id)
        return await data.account(bank, user_id, cursor, limit)

    return router


def _bank_resolver(source: BankSource | None) -> Callable[[Request], Awaitable[TokenBank]]:
    """How a request finds its bank: the app's (``get_token_bank``), a fixed one, or a factory's.
    Raises ConfigurationError for anything else."""
    if source is not None and not isinstance(source, TokenBank) and not callable(source):
        raise ConfigurationError("create_dashboard: bank must be a TokenBank or a function returning one")

    async def resolve(request: Request) -> TokenBank:
        if source is None:
            return get_token_bank(request)
        if isinstance(source, TokenBank):
            return source
        bank = source()
        if inspect.isawaitable(bank):
            bank = await bank
        if not isinstance(bank, TokenBank):
            raise ConfigurationError("create_dashboard: the bank factory did not return a TokenBank")
        return bank

    return resolve


__all__ = ["DASHBOARD_READ", "BankSource", "create_dashboard"]
