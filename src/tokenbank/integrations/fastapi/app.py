"""``create_app()``: the ready-made API application that ``tokenbank serve`` runs (and tests build directly).

Reads are open; every write (each POST, and the PUT of an account's limits) needs ``Authorization: Bearer <key>``,
compared in constant time. Without a key the
app refuses to build unless ``allow_unauthenticated=True`` (``serve`` allows that only on loopback). An
``authorize`` hook, if given, still runs for every write and every read of one account, and for the dashboard
(``GET /dashboard``, read-only like the other reads) and its data.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Mapping
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tokenbank._version import __version__
from tokenbank.bank import TokenBank
from tokenbank.errors import ConfigurationError
from tokenbank.integrations.fastapi.errors import install_error_handlers
from tokenbank.integrations.fastapi.lifespan import STATE_KEY, token_bank_lifespan
from tokenbank.integrations.fastapi.router import Authorize, create_router
from tokenbank.settings import Settings

API_KEY_VARIABLE = "TOKENBANK_API_KEY"
_bearer = HTTPBearer(auto_error=False, description=f"The server's {API_KEY_VARIABLE}; needed by every write.")


def require_api_key(api_key: str) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    """A dependency refusing (401) a request without ``Authorization: Bearer <api_key>``."""
    expected = api_key.encode()

    def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        given = b"" if credentials is None else credentials.credentials.encode()
        # compare_digest on bytes: constant time, and no TypeError for non-ASCII header text.
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                401,
                detail={"code": "unauthorized", "message": "a valid 'Authorization: Bearer <api key>' is required"},
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def create_app(
    settings: Settings | None = None,
    api_key: str | None = None,
    *,
    bank: TokenBank | None = None,
    allow_unauthenticated: bool = False,
    authorize: Authorize | None = None,
    prefix: str = "",
    dashboard: bool = True,
    exchange_banks: Mapping[str, TokenBank] | None = None,
) -> FastAPI:
    """The tokenbank API as an app: lifespan (opens the bank from ``settings``, or the environment), router,
    error handlers, ``/metrics``, ``/health`` and, unless ``dashboard=False``, the operator dashboard at
    ``/dashboard``; the operator routes of account controls and staking are on (behind the API key like every
    write). ``bank``: use this already opened bank instead (the caller opens and closes it).
    ``api_key`` defaults to ``$TOKENBANK_API_KEY``. ``exchange_banks={symbol: bank}``: adds ``POST /exchanges``
    between the app's bank and these banks of other tokens on the same store, behind the API key like every
    write (see ``create_router``; the caller opens and closes these banks).

    Raises ConfigurationError without an API key unless ``allow_unauthenticated``, and for ``exchange_banks``
    that is not a non-empty mapping of each symbol to its token's bank."""
    if bank is not None and settings is not None:
        raise ConfigurationError("create_app: pass settings or an opened bank, not both")
    if bank is None and settings is None:
        settings = Settings.load()  # now, so the router and the lifespan see the same token settings
    key = api_key if api_key is not None else os.environ.get(API_KEY_VARIABLE) or None
    if key is None and not allow_unauthenticated:
        raise ConfigurationError(
            f"{API_KEY_VARIABLE}: is not set; every write would be open to anyone who reaches the server "
            "(pass allow_unauthenticated=True only for a loopback-only server)"
        )
    if key is not None and not key.strip():
        raise ConfigurationError(f"{API_KEY_VARIABLE}: must not be blank")
    app = FastAPI(
        title="tokenbank",
        version=__version__,
        summary="An in-app token ledger: balances, transfers, holds, supply.",
        lifespan=None if bank is not None else token_bank_lifespan(settings),
    )
    if bank is not None:
        setattr(app.state, STATE_KEY, bank)
    guard = [] if key is None else [Depends(require_api_key(key))]
    decimals = bank.decimals if bank is not None else settings.decimals if settings is not None else None
    # Reads are open by design (the key guards the writes); without a key only a loopback server may get here.
    router = create_router(
        prefix=prefix, authorize=authorize, mutation_dependencies=guard, allow_anonymous=True, decimals=decimals,
        account_controls=True, exchange_banks=exchange_banks, staking=True, lots=True,
    )  # fmt: skip
    app.include_router(router)
    if dashboard:
        # Imported here: the dashboard builds on this package, which must finish importing first.
        from tokenbank.integrations.dashboard.router import create_dashboard

        app.include_router(create_dashboard(authorize=authorize, allow_anonymous=True, prefix=f"{prefix}/dashboard"))
    install_error_handlers(app)
    return app


__all__ = ["API_KEY_VARIABLE", "create_app", "require_api_key"]
