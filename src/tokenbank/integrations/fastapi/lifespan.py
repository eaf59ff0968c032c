"""The bank's lifetime inside a FastAPI app: open it at startup, close it at shutdown, find it per request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import Request
from starlette.applications import Starlette

from tokenbank.bank import TokenBank
from tokenbank.errors import ConfigurationError
from tokenbank.settings import Settings

STATE_KEY = "token_bank"
"""The bank lives at ``app.state.token_bank``."""


def token_bank_lifespan(
    source: Settings | TokenBank | None = None,
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """A FastAPI ``lifespan=``: opens a bank (from ``Settings``, from a not yet opened ``TokenBank``, or from the
    environment when ``None``), stores it on ``app.state.token_bank`` and closes it at shutdown.

    To combine it with your own lifespan, enter it inside yours: ``async with token_bank_lifespan(s)(app): ...``.
    Startup raises ConfigurationError or StorageUnavailableError if the bank cannot open."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        bank = source if isinstance(source, TokenBank) else TokenBank(source)
        await bank.open()
        setattr(app.state, STATE_KEY, bank)
        try:
            yield
        finally:
            try:
                await bank.close()
            finally:
                if getattr(app.state, STATE_KEY, None) is bank:
                    delattr(app.state, STATE_KEY)

    return lifespan


def get_token_bank(request: Request) -> TokenBank:
    """FastAPI dependency: the app's open bank (``Depends(get_token_bank)``); override it with
    ``app.dependency_overrides[get_token_bank]`` to supply your own. Raises ConfigurationError (500) when the app
    has none, i.e. was built without ``lifespan=token_bank_lifespan(...)`` or ``app.state.token_bank = bank``."""
    bank = getattr(request.app.state, STATE_KEY, None)
    if bank is None:
        bank = getattr(request.state, STATE_KEY, None)
    if not isinstance(bank, TokenBank):
        raise ConfigurationError(
            "no TokenBank on app.state: build the app with lifespan=token_bank_lifespan(settings) "
            "or set app.state.token_bank to an open bank"
        )
    return bank


__all__ = ["STATE_KEY", "get_token_bank", "token_bank_lifespan"]
