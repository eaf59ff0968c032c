"""Flask extension: ``TokenBankExtension(app)`` opens one blocking bank per app and process from
``app.config["TOKENBANK"]`` (a dict of :class:`~tokenbank.Settings` fields) on first use. Needs
``pip install 'tokenbank[flask]'``.

::

    tokens = TokenBankExtension(app)

    @app.get("/balance/<user_id>")
    def balance(user_id):
        return {"balance": str(get_bank().get_balance(user_id))}
"""

from __future__ import annotations

from tokenbank.errors import ConfigurationError

try:
    import flask as _flask
except ImportError:  # pragma: no cover - depends on the environment
    raise ConfigurationError("the Flask integration needs Flask: pip install 'tokenbank[flask]'") from None

from tokenbank.blocking import TokenBank
from tokenbank.integrations._shared import LazyBank, settings_from

__all__ = ["CONFIG_KEY", "EXTENSION_KEY", "TokenBankExtension", "get_bank"]

CONFIG_KEY = "TOKENBANK"
"""The ``app.config`` key read: a dict of tokenbank Settings fields."""

EXTENSION_KEY = "tokenbank"
"""Where the app's bank holder lives in ``app.extensions``."""


class TokenBankExtension:
    """The tokenbank extension; ``TokenBankExtension(app)`` or, with an app factory, ``ext.init_app(app)``."""

    def __init__(self, app: _flask.Flask | None = None) -> None:
        self._app = app
        if app is not None:
            self.init_app(app)

    def init_app(self, app: _flask.Flask) -> None:
        """Register on ``app``; the bank opens at its first use and closes at exit. Raises ConfigurationError
        for a ``TOKENBANK`` config that is not a dict (bad fields are reported when the bank opens)."""
        config = app.config.get(CONFIG_KEY)
        if config is not None and not isinstance(config, dict):
            raise ConfigurationError(f'app.config["{CONFIG_KEY}"] must be a dict of tokenbank Settings fields')
        app.extensions[EXTENSION_KEY] = LazyBank(lambda: settings_from(app.config.get(CONFIG_KEY), CONFIG_KEY))

    @property
    def bank(self) -> TokenBank:
        """The bank of the current app (inside a request or app context), else of the app given at creation."""
        if _flask.has_app_context() or self._app is None:
            return get_bank()
        return _holder(self._app).get()

    def close(self, app: _flask.Flask | None = None) -> None:
        """Close the bank of ``app`` (default: as for :attr:`bank`); the next use opens a new one."""
        app = app or (_flask.current_app if _flask.has_app_context() else self._app)
        if app is not None:
            _holder(app).close()


def get_bank() -> TokenBank:
    """The bank of the current Flask app. Raises RuntimeError outside an app context, ConfigurationError if
    the extension was not registered on the app."""
    return _holder(_flask.current_app).get()


def _holder(app: _flask.Flask) -> LazyBank:
    holder = app.extensions.get(EXTENSION_KEY)
    if not isinstance(holder, LazyBank):
        raise ConfigurationError("the tokenbank extension is not registered on this app: TokenBankExtension(app)")
    return holder
