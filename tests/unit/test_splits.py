"""The split rounding rule as a pure function (exact, largest remainder), and the checks of a split's arguments."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenbank import InvalidAccountError, InvalidAmountError, InvalidRequestError, TokenBankError
from tokenbank.splits import Percent, Share, allocate, plan_split


@st.composite
def splits(draw: st.DrawFn) -> tuple[int, list[Share]]:
    """An amount and up to 100 shares sized so that most splits fit (the others must be refused)."""
    amount = draw(st.integers(1, 10**15))
    count = draw(st.integers(1, 100))
    top = (Decimal(100) / count).quantize(Decimal("0.0001"), rounding="ROUND_DOWN")
    percent = st.decimals(Decimal("0.0001"), top, places=4).map(Percent)
    fixed = st.integers(1, max(1, amount // (2 * count)))
    shares = draw(st.lists(st.one_of(percent, fixed), min_size=count, max_size=count))
    return amount, shares


@settings(max_examples=300)
@given(splits())
def test_allocation_is_exact_and_uses_the_largest_remainders(split: tuple[int, list[Share]]) -> None:
    amount, shares = split
    quotas = {i: amount * Fraction(s.value) / 100 for i, s in enumerate(shares) if isinstance(s, Percent)}
    fixed = sum(s for s in shares if isinstance(s, int))
    try:
        units, remainder = allocate(amount, shares)
    except InvalidAmountError as exc:
        assert exc.param == "legs"
        assert fixed + sum(quotas.values()) > amount
        return
    assert sum(units) + remainder == amount and remainder >= 0
    assert remainder == amount - fixed - math.floor(sum(quotas.values()))
    for i, share in enumerate(shares):
        if isinstance(share, int):
            assert units[i] == share
        else:
            assert abs(units[i] - quotas[i]) < 1 and units[i] >= math.floor(quotas[i])
    raised = [i for i in quotas if units[i] > math.floor(quotas[i])]
    assert len(raised) == math.floor(sum(quotas.values())) - sum(math.floor(q) for q in quotas.values())

    def fraction(i: int) -> Fraction:
        return quotas[i] - math.floor(quotas[i])

    for i in raised:  # no leg left without its extra unit has a larger fraction, or an equal one and comes first
        for j in set(quotas) - set(raised):
            assert fraction(i) > fraction(j) or (fraction(i) == fraction(j) and i < j)


@pytest.mark.parametrize(
    ("amount", "shares", "expected"),
    [
        (100, ["33.33", "33.33", "33.33"], ([33, 33, 33], 1)),
        (1, ["50", "50"], ([1, 0], 0)),
        (3, ["50", "50"], ([2, 1], 0)),
        (10, ["14", "17", "69"], ([1, 2, 7], 0)),
        (7, ["100"], ([7], 0)),
        (10, [3, "50"], ([3, 5], 2)),
    ],
)
def test_allocation_examples(amount: int, shares: list[Any], expected: tuple[list[int], int]) -> None:
    given_shares = [s if isinstance(s, int) else Percent(Decimal(s)) for s in shares]
    assert allocate(amount, given_shares) == expected


def test_percentages_over_100_are_refused() -> None:
    with pytest.raises(InvalidAmountError) as caught:
        allocate(10**6, [Percent(Decimal("60")), Percent(Decimal("40.0001"))])
    assert caught.value.param == "legs"


def plan(**changes: Any) -> Any:
    args: dict[str, Any] = {
        "from_user_id": "alice", "amount": "10", "legs": [("bob", "50%"), ("carol", "1")], "remainder_to": None,
        "idempotency_key": None, "metadata": None, "reason": None, "decimals": 2, **changes,
    }  # fmt: skip
    return plan_split(**args)


BAD: list[tuple[str, dict[str, Any], type[TokenBankError], str]] = [
    ("sender-empty", {"from_user_id": ""}, InvalidAccountError, "from_user_id"),
    ("amount-zero", {"amount": 0}, InvalidAmountError, "amount"),
    ("amount-float", {"amount": 1.5}, InvalidAmountError, "amount"),
    ("legs-empty", {"legs": []}, InvalidRequestError, "legs"),
    ("legs-str", {"legs": "bob:50%"}, InvalidRequestError, "legs"),
    ("legs-dict", {"legs": {"bob": "50%"}}, InvalidRequestError, "legs"),
    ("legs-101", {"legs": [(f"u{n}", "0.01") for n in range(101)]}, InvalidRequestError, "legs"),
    ("leg-not-a-pair", {"legs": [("bob", "1"), ("carol",)]}, InvalidRequestError, "legs.1"),
    ("leg-to-empty", {"legs": [("", "1")]}, InvalidAccountError, "legs.0.to_user_id"),
    ("leg-to-int", {"legs": [(5, "1")]}, InvalidAccountError, "legs.0.to_user_id"),
    ("leg-to-sender", {"legs": [("bob", "1"), ("alice", "1")]}, InvalidAccountError, "legs.1.to_user_id"),
    ("leg-twice", {"legs": [("bob", "1"), ("carol", "1"), ("bob", "2")]}, InvalidAccountError, "legs.2.to_user_id"),
    ("share-zero-percent", {"legs": [("bob", "0%")]}, InvalidAmountError, "legs.0.share"),
    ("share-over-100-percent", {"legs": [("bob", "100.01%")]}, InvalidAmountError, "legs.0.share"),
    ("share-negative-percent", {"legs": [("bob", "-5%")]}, InvalidAmountError, "legs.0.share"),
    ("share-exponent-percent", {"legs": [("bob", "1e1%")]}, InvalidAmountError, "legs.0.share"),
    ("share-bare-percent", {"legs": [("bob", "%")]}, InvalidAmountError, "legs.0.share"),
    ("share-float", {"legs": [("bob", 0.5)]}, InvalidAmountError, "legs.0.share"),
    ("share-none", {"legs": [("bob", None)]}, InvalidAmountError, "legs.0.share"),
    ("share-three-decimals", {"legs": [("bob", "1"), ("carol", "0.001")]}, InvalidAmountError, "legs.1.share"),
    ("share-zero", {"legs": [("bob", "0")]}, InvalidAmountError, "legs.0.share"),
    ("percentages-over-100", {"legs": [("bob", "60%"), ("carol", "41%")]}, InvalidAmountError, "legs"),
    ("shares-over-amount", {"legs": [("bob", "95%"), ("carol", "0.51")]}, InvalidAmountError, "legs"),
    ("fixed-over-amount", {"legs": [("bob", "10.01")]}, InvalidAmountError, "legs"),
    ("remainder-to-sender", {"remainder_to": "alice"}, InvalidAccountError, "remainder_to"),
    ("remainder-to-empty", {"remainder_to": ""}, InvalidAccountError, "remainder_to"),
    ("metadata-split-id", {"metadata": {"split_id": "mine"}}, InvalidRequestError, "metadata"),
    ("metadata-list", {"metadata": [1]}, InvalidRequestError, "metadata"),
    ("key-empty", {"idempotency_key": ""}, InvalidRequestError, "idempotency_key"),
    ("key-129", {"idempotency_key": "k" * 129}, InvalidRequestError, "idempotency_key"),
    ("reason-int", {"reason": 5}, InvalidRequestError, "reason"),
]


@pytest.mark.parametrize(("changes", "error", "param"), [pytest.param(*row[1:], id=row[0]) for row in BAD])
def test_bad_arguments_name_the_one_at_fault(changes: dict[str, Any], error: type[TokenBankError], param: str) -> None:
    with pytest.raises(TokenBankError) as caught:
        plan(**changes)
    assert type(caught.value) is error, caught.value
    assert caught.value.param == param, caught.value


def test_the_plan_keys_each_transaction_and_leaves_out_empty_legs() -> None:
    split = plan(amount="0.01", legs=[("bob", "10%"), ("carol", "20%")], remainder_to="dave", idempotency_key="o-1")
    assert [(leg.to_user_id, leg.units) for leg in split.legs] == [("dave", 1)]
    assert split.leg_key(0) == "o-1:0" and split.metadata == {"split_id": split.split_id}
    assert plan(idempotency_key="k" * 124).leg_key(100) == "k" * 124 + ":100"
    hashed = plan(idempotency_key="k" * 125).leg_key(100)
    assert len(hashed) == 68 and hashed.endswith(":100") and not hashed.startswith("k")
    # The fingerprint is the request's, not the split id's: the same request fingerprints the same.
    assert plan(idempotency_key="x").leg_fingerprint(1) == plan(idempotency_key="x").leg_fingerprint(1)
    assert plan(idempotency_key="x").leg_fingerprint(1) != plan(idempotency_key="x", reason="r").leg_fingerprint(1)
