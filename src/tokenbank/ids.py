"""Identifiers: time-ordered UUIDv7 ids, account id validation and idempotency fingerprints."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

import uuid_utils

from tokenbank.errors import InvalidAccountError, InvalidRequestError

MAX_ACCOUNT_ID_LENGTH = 128
MAX_IDEMPOTENCY_KEY_LENGTH = 128
MAX_METADATA_BYTES = 4096
MAX_REASON_LENGTH = 500

_CONTROL_OR_SURROGATE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""Unicode categories Cc (control characters) and Cs (lone surrogates), exactly: one regex scan per id."""
_SURROGATE = re.compile("[\ud800-\udfff]")


def new_id() -> str:
    """A UUIDv7 string: sortable by creation time, unique without coordination."""
    return str(uuid_utils.uuid7())


def numbered_key(key: str | None, n: int, room: int) -> str | None:
    """The idempotency key of the ``n``-th write of one keyed request (a split's legs, a vesting's tranches):
    ``{key}:{n}``, a key longer than the suffix's ``room`` (the longest suffix) leaves replaced by its SHA-256 hex
    digest first, so every write of one request is keyed alike."""
    if key is None:
        return None
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH - room:
        key = hashlib.sha256(key.encode()).hexdigest()
    return f"{key}:{n}"


def check_account_id(user_id: object, role: str = "account") -> str:
    """Return ``user_id`` if it is a valid account id (non-empty, at most 128 characters, no control characters),
    else raise InvalidAccountError."""
    if not isinstance(user_id, str):
        raise InvalidAccountError(f"{role} id must be a string, got {type(user_id).__name__}")
    if not user_id:
        raise InvalidAccountError(f"{role} id must not be empty")
    if len(user_id) > MAX_ACCOUNT_ID_LENGTH:
        raise InvalidAccountError(f"{role} id is longer than {MAX_ACCOUNT_ID_LENGTH} characters")
    if _CONTROL_OR_SURROGATE.search(user_id):
        raise InvalidAccountError(f"{role} id must not contain control characters")
    return user_id


def check_idempotency_key(key: object) -> str | None:
    """Validate an optional idempotency key (same rules as account ids)."""
    if key is None:
        return None
    if not isinstance(key, str) or not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidRequestError(
            f"idempotency key must be a non-empty string of at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
        )
    if _CONTROL_OR_SURROGATE.search(key):
        raise InvalidRequestError("idempotency key must not contain control characters or lone surrogates")
    return key


def encode_metadata(metadata: object) -> str | None:
    """Canonical JSON text for a metadata object, at most 4 KiB; raises InvalidRequestError otherwise."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise InvalidRequestError("metadata must be a JSON object (a dict)")
    try:
        text = json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"metadata is not JSON-serialisable: {exc}") from None
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        raise InvalidRequestError("metadata must be valid Unicode (no lone surrogates)") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidRequestError(f"metadata is larger than {MAX_METADATA_BYTES} bytes as JSON")
    return text


def check_reason(reason: object) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
        raise InvalidRequestError(f"reason must be a string of at most {MAX_REASON_LENGTH} characters")
    if "\x00" in reason or _SURROGATE.search(reason):
        raise InvalidRequestError("reason must be valid Unicode text without NUL characters")
    return reason


def fingerprint(*parts: Any) -> str:
    """A stable hash of a request, stored with its idempotency key to detect a reused key."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_lookup_id(value: object, what: str) -> str:
    """A transaction or hold id to look up: a short printable string (anything else cannot exist)."""
    if not isinstance(value, str) or not 0 < len(value) <= 64 or not value.isprintable():
        raise InvalidRequestError(f"{what} id must be a non-empty printable string of at most 64 characters")
    return value
