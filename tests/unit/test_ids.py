"""ids: account id rules, idempotency keys, metadata encoding, reasons, UUIDv7, fingerprints."""

from __future__ import annotations

import json
import math
import uuid
from decimal import Decimal

import pytest

from tokenbank import InvalidAccountError, InvalidRequestError
from tokenbank.ids import (
    MAX_METADATA_BYTES,
    check_account_id,
    check_idempotency_key,
    check_reason,
    encode_metadata,
    fingerprint,
    new_id,
)


@pytest.mark.parametrize(
    "user_id",
    ["a", "x" * 128, "a:b", "{x}", "*", "'; DROP TABLE tb_accounts;--", '"q"', "with space", "ünï😀", " ", "\u200b"],
)
def test_valid_account_ids(user_id: str) -> None:
    assert check_account_id(user_id) == user_id


@pytest.mark.parametrize(
    "user_id", ["", "x" * 129, "a\x00", "\n", "a\tb", "\x7f", "\x85", "\ud800", 1, None, b"a", ["a"], 1.5]
)
def test_invalid_account_ids(user_id: object) -> None:
    with pytest.raises(InvalidAccountError) as caught:
        check_account_id(user_id)
    assert caught.value.code == "invalid_account"


def test_account_error_names_the_role() -> None:
    with pytest.raises(InvalidAccountError, match="receiver"):
        check_account_id("", "receiver")


def test_idempotency_keys() -> None:
    assert check_idempotency_key(None) is None
    assert check_idempotency_key("k" * 128) == "k" * 128
    for bad in ("", "k" * 129, "a\nb", 5, b"k"):
        with pytest.raises(InvalidRequestError):
            check_idempotency_key(bad)


def test_metadata_size_limit_counts_utf8_bytes() -> None:
    overhead = len('{"b":""}')
    fits = {"b": "x" * (MAX_METADATA_BYTES - overhead)}
    assert encode_metadata(fits) is not None
    assert len(encode_metadata(fits).encode()) == MAX_METADATA_BYTES  # type: ignore[union-attr]
    with pytest.raises(InvalidRequestError):
        encode_metadata({"b": "x" * (MAX_METADATA_BYTES - overhead + 1)})
    two_byte = {"b": "é" * ((MAX_METADATA_BYTES - overhead) // 2 + 1)}
    with pytest.raises(InvalidRequestError):
        encode_metadata(two_byte)


def test_metadata_is_canonical_json() -> None:
    assert encode_metadata(None) is None
    text = encode_metadata({"b": 1, "a": [1, "ü"], "c": None})
    assert text == '{"a":[1,"ü"],"b":1,"c":null}'
    assert json.loads(text) == {"a": [1, "ü"], "b": 1, "c": None}
    assert encode_metadata({}) == "{}"


@pytest.mark.parametrize(
    "metadata", [[1], "x", 1, {"x": math.nan}, {"x": math.inf}, {"x": object()}, {"x": Decimal(1)}]
)
def test_metadata_must_be_a_json_object(metadata: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        encode_metadata(metadata)
    assert caught.value.code == "invalid_request"


def test_reason() -> None:
    assert check_reason(None) is None
    assert check_reason("r" * 500) == "r" * 500
    for bad in ("r" * 501, 5, b"r"):
        with pytest.raises(InvalidRequestError):
            check_reason(bad)


def test_new_id_is_a_time_ordered_uuid7() -> None:
    ids = [new_id() for _ in range(200)]
    assert all(uuid.UUID(i).version == 7 and str(uuid.UUID(i)) == i for i in ids)
    assert len(set(ids)) == 200
    assert ids == sorted(ids)


def test_fingerprint_is_stable_and_sensitive() -> None:
    assert fingerprint("transfer", 1, None) == fingerprint("transfer", 1, None)
    assert fingerprint("transfer", 1, None) != fingerprint("transfer", 2, None)
    assert fingerprint("transfer", 1, "{}") != fingerprint("transfer", 1, None)
    assert len(fingerprint("x")) == 64
