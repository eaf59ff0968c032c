"""FastAPI integration: ``token_bank_lifespan``, ``get_token_bank``, ``create_router`` and ``install_error_handlers``
(plus ``create_app``, the ready-made app of ``tokenbank serve``). Needs ``pip install 'tokenbank[fastapi]'``.

::

    app = FastAPI(lifespan=token_bank_lifespan(Settings()))
    app.include_router(create_router(prefix="/tokens", authorize=my_guard))
    install_error_handlers(app)
"""

from tokenbank.errors import ConfigurationError

try:
    import fastapi as _fastapi  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    raise ConfigurationError("the FastAPI integration needs FastAPI: pip install 'tokenbank[fastapi]'") from None

from tokenbank.integrations.fastapi.app import API_KEY_VARIABLE, create_app, require_api_key
from tokenbank.integrations.fastapi.errors import install_error_handlers
from tokenbank.integrations.fastapi.lifespan import STATE_KEY, get_token_bank, token_bank_lifespan
from tokenbank.integrations.fastapi.router import (
    MAX_BODY_BYTES,
    REPLAYED_HEADER,
    Action,
    Authorize,
    create_router,
    format_amount,
)
from tokenbank.integrations.fastapi.sse import EventStreamResponse

__all__ = [
    "API_KEY_VARIABLE",
    "MAX_BODY_BYTES",
    "REPLAYED_HEADER",
    "STATE_KEY",
    "Action",
    "Authorize",
    "EventStreamResponse",
    "create_app",
    "create_router",
    "format_amount",
    "get_token_bank",
    "install_error_handlers",
    "require_api_key",
    "token_bank_lifespan",
]
