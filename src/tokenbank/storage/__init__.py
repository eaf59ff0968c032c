"""Storage backends. Each registers itself for a storage mode when its module is imported."""

from __future__ import annotations

import importlib

_BACKEND_MODULES = {
    "sql": ("tokenbank.storage.sql.backend", "tokenbank"),
    "redis": ("tokenbank.storage.redis.backend", "tokenbank[redis]"),
    "hybrid": ("tokenbank.storage.hybrid.backend", "tokenbank[redis,postgres]"),
}


def load_backends(mode: str) -> None:
    """Import the backend module for ``mode``; a missing optional dependency becomes a ConfigurationError."""
    from tokenbank.errors import ConfigurationError

    module, extra = _BACKEND_MODULES.get(mode, (None, None))
    if module is None:
        return
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("tokenbank"):
            raise ConfigurationError(f"TOKEN_STORAGE_MODE: storage mode {mode!r} is not available") from None
        raise ConfigurationError(
            f"TOKEN_STORAGE_MODE={mode} needs the {exc.name!r} package: pip install '{extra}'"
        ) from None
