"""Errors name the argument at fault (``param``); an insufficient balance carries its figures."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tokenbank import InsufficientBalanceError, InvalidAmountError, InvalidRequestError, TokenBankError
from tokenbank.errors import STATUS_PARAMS, blame, error_for
from tokenbank.integrations.fastapi.errors import request_param, validation_param
from tokenbank.status import Status


def test_every_failure_status_names_a_param_or_none() -> None:
    assert set(STATUS_PARAMS) == {s for s in Status if not s.ok}
    assert error_for(Status.HOLD_EXPIRED).param == "hold_id"
    assert error_for(Status.INSUFFICIENT_BALANCE, param="transaction_id").param == "transaction_id"
    assert error_for(Status.BATCH_ABORTED).param is None


def test_errors_have_no_param_unless_given() -> None:
    assert TokenBankError("x").param is None
    assert InvalidRequestError("x", param="reason").param == "reason"


def test_insufficient_balance_carries_its_figures() -> None:
    error = InsufficientBalanceError(
        "insufficient balance: 'a' has 1.00 available, 2.00 requested",
        user_id="a",
        available=Decimal("1.00"),
        requested=Decimal("2.00"),
    )
    assert (error.param, error.user_id, error.available, error.requested) == (
        "amount",
        "a",
        Decimal("1.00"),
        Decimal("2.00"),
    )
    bare = InsufficientBalanceError("insufficient balance")
    assert (bare.available, bare.requested, bare.user_id, bare.param) == (None, None, None, "amount")


def test_blame_names_the_first_culprit_only() -> None:
    with pytest.raises(InvalidAmountError) as caught, blame("amount"):
        raise InvalidAmountError("bad")
    assert caught.value.param == "amount"
    with pytest.raises(InvalidAmountError) as kept, blame("outer"), blame("inner"):
        raise InvalidAmountError("bad")
    assert kept.value.param == "inner"
    with pytest.raises(ValueError, match="not ours"), blame("amount"):
        raise ValueError("not ours")


def test_rest_names() -> None:
    assert request_param(InvalidRequestError("x", param="expires_in")) == "expires_in_seconds"
    assert request_param(InvalidRequestError("x", param="amount")) == "amount"
    assert request_param(InvalidRequestError("x")) is None


@pytest.mark.parametrize(
    ("loc", "kind", "param"),
    [
        (("body", "amount"), "string_type", "amount"),
        (("body", "transfers", 2, "amount"), "amount_format", "transfers.2.amount"),
        (("body",), "missing", None),
        (("body", 17), "json_invalid", None),
        (("path", "hold_id"), "string_too_long", "hold_id"),
        (("query", "type", 0), "enum", "type"),
        (("header", "Idempotency-Key"), "string_too_short", "idempotency_key"),
        ((), "value_error", None),
    ],
)
def test_validation_param(loc: tuple[object, ...], kind: str, param: str | None) -> None:
    assert validation_param([{"loc": loc, "type": kind, "msg": "bad"}]) == param


def test_validation_param_of_nothing() -> None:
    assert validation_param([]) is None
