"""History cursors: opaque, URL-safe, round-trip exactly, and anything else is an InvalidRequestError."""

from __future__ import annotations

import base64

import pytest

from tokenbank import InvalidRequestError
from tokenbank.services.transactions import decode_cursor, encode_cursor


@pytest.mark.parametrize("seq", [1, 2, 9, 10, 12345, 2**31, 2**63 - 1])
def test_round_trip(seq: int) -> None:
    cursor = encode_cursor(seq)
    assert decode_cursor(cursor) == seq
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor
    assert str(seq) not in cursor  # opaque, not a bare number


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    ["", "x", "!!!!", _b64("s1:"), _b64("s1:0"), _b64("s1:-3"), _b64("s1:abc"), _b64("s2:5"), _b64("5"), "\udcff", 7],
)
def test_bad_cursors(cursor: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        decode_cursor(cursor)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_request"
