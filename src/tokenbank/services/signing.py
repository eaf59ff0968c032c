"""Webhook signatures as the Standard Webhooks specification defines them (https://www.standardwebhooks.com).

A secret is ``whsec_`` followed by base64 of random bytes; the signed content is ``{id}.{timestamp}.{body}``;
the ``webhook-signature`` header is ``v1,`` followed by base64 of its HMAC-SHA256 under the secret's bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from tokenbank.errors import InvalidRequestError

PREFIX = "whsec_"
_MIN_BYTES, _MAX_BYTES = 16, 64


def new_secret() -> str:
    """A fresh secret: 24 random bytes (the specification's recommended size), base64, with the prefix."""
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_key(secret: object) -> bytes:
    """The HMAC key of a ``whsec_`` secret. Raises InvalidRequestError for anything else."""
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        raise InvalidRequestError("webhook secret must be a string starting with 'whsec_' followed by base64")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError("webhook secret: the part after 'whsec_' is not valid base64") from None
    if not _MIN_BYTES <= len(key) <= _MAX_BYTES:
        raise InvalidRequestError(f"webhook secret must encode {_MIN_BYTES} to {_MAX_BYTES} bytes, not {len(key)}")
    return key


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header a delivery carries."""
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }
