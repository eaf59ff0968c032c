"""JSON log lines for the ``tokenbank`` logger (``TOKEN_LOG_FORMAT=json``): stdlib ``logging`` only.

:class:`JsonFormatter` writes one JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
``message``, then every structured ``extra`` field the record carries (operation, from_user_id, to_user_id,
amount, transaction_id, code, latency_ms...), and ``exception`` when there is one. Secrets never get through:
passwords in URLs (``scheme://user:***@host``) and ``password=``/``api_key=``-style values are masked wherever they
appear, and an extra field named like a secret (password, secret, api_key, authorization...) is written as ``***``.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import IO, Any

__all__ = ["JsonFormatter", "mask_secrets", "use_json_logs"]

LOGGER = "tokenbank"
MASK = "***"

_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s/:@]*:)[^\s@/]+@")
_KEY_VALUE = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|api[_-]?key|access[_-]?token|authorization)(['\"]?\s*[=:]\s*['\"]?)"
    r"(?:bearer\s+)?[^\s'\"&,;]+"
)
_SECRET_FIELD = re.compile(r"(?i)(password|passwd|secret|api[_-]?key|apikey|authorization|credential|private[_-]?key)")

# The attributes every LogRecord has; whatever else a record carries came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def mask_secrets(text: str) -> str:
    """``text`` with URL passwords and ``password=...``-style values replaced by ``***``."""
    return _KEY_VALUE.sub(rf"\1\2{MASK}", _URL_PASSWORD.sub(rf"\1{MASK}@", text))


def _clean(key: str, value: Any) -> Any:
    if _SECRET_FIELD.search(key):
        return MASK
    if isinstance(value, str):
        return mask_secrets(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(key, v) for v in value]
    return mask_secrets(str(value))  # Decimal, datetime, enums...: their text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's ``extra`` fields, secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_secrets(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = _clean(key, value)
        if record.exc_info:
            out["exception"] = mask_secrets(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exception"] = mask_secrets(record.exc_text)
        if record.stack_info:
            out["stack"] = mask_secrets(self.formatStack(record.stack_info))
        return json.dumps(out, ensure_ascii=False, default=str)


def use_json_logs(stream: IO[str] | None = None) -> logging.Handler | None:
    """Make the ``tokenbank`` logger write JSON lines to ``stream`` (stderr by default), not through the root
    logger's handlers. Does nothing (returns None) when the logger already has handlers of its own: whoever
    attached them chose the format (give them a :class:`JsonFormatter`). The level stays yours to set."""
    logger = logging.getLogger(LOGGER)
    if logger.handlers:
        return None
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False  # the same line once, not again in text through the root handlers
    return handler
