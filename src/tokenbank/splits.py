"""Splits: one payment shared among receivers by fixed amounts and percentages, planned exactly in base units.

:func:`allocate` is the rounding rule alone (a pure function on base units); :func:`plan_split` checks the
arguments of :meth:`TokenBank.transfer_split <tokenbank.bank.TokenBank.transfer_split>` and turns them into the
legs to write, their idempotency keys and fingerprints. Nothing here touches a store.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from tokenbank.amounts import AmountInput, to_base_units
from tokenbank.errors import InvalidAccountError, InvalidAmountError, InvalidRequestError, blame
from tokenbank.ids import (
    check_account_id,
    check_idempotency_key,
    check_reason,
    encode_metadata,
    fingerprint,
    new_id,
    numbered_key,
)

MAX_LEGS = 100
"""Most legs one split may have (the remainder's own transaction, when it has one, comes on top)."""
SPLIT_ID_KEY = "split_id"
"""The metadata key every transaction of a split carries its split id under."""
KEY_SUFFIX_ROOM = len(f":{MAX_LEGS}")
"""Characters a leg's key adds to the caller's key (``:0`` to ``:100``); longer keys are hashed first."""

Leg = tuple[str, AmountInput]
"""``(to_user_id, share)``: a share is an amount, or a percentage of the split's amount such as ``"12.5%"``."""

_PERCENT = re.compile(r"([0-9]+(?:\.[0-9]+)?)%")
_MAX_PERCENT_TEXT = 80


@dataclass(frozen=True, slots=True)
class Percent:
    """A percentage share of a split: ``0 < value <= 100``."""

    value: Decimal


Share = int | Percent
"""A leg's share for :func:`allocate`: base units (a fixed amount), or a :class:`Percent` of the amount."""


def allocate(amount: int, shares: Sequence[Share]) -> tuple[list[int], int]:
    """Base units per leg, and what is left of ``amount`` (the largest remainder method).

    A fixed leg gets its units. A percentage leg gets ``floor(amount * pct / 100)``; then the
    ``floor(sum of exact quotas) - sum of those floors`` units still due to percentage legs go one each to the
    percentage legs with the largest fractional parts (ties: the earlier leg). The remainder, returned
    separately, is ``amount`` minus everything allocated; never negative. Raises InvalidAmountError
    (``param="legs"``) when the percentages add up to more than 100 or the shares to more than ``amount``."""
    quotas = {i: amount * Fraction(s.value) / 100 for i, s in enumerate(shares) if isinstance(s, Percent)}
    fixed = sum(s for s in shares if isinstance(s, int))
    if sum(Fraction(s.value) for s in shares if isinstance(s, Percent)) > 100:
        raise InvalidAmountError("the percentages of the legs add up to more than 100%", param="legs")
    if fixed + sum(quotas.values()) > amount:
        raise InvalidAmountError("the legs' shares add up to more than the amount", param="legs")
    units = [s if isinstance(s, int) else math.floor(quotas[i]) for i, s in enumerate(shares)]
    due = math.floor(sum(quotas.values())) - sum(units[i] for i in quotas)
    for i in sorted(quotas, key=lambda i: (units[i] - quotas[i], i))[:due]:  # largest fraction first, then order
        units[i] += 1
    return units, amount - sum(units)


@dataclass(frozen=True, slots=True)
class SplitLeg:
    to_user_id: str
    units: int


@dataclass(frozen=True, slots=True)
class SplitPlan:
    """A checked split: the transactions to write (legs of 0 units left out), in order, and how to key them."""

    from_user_id: str
    units: int
    legs: tuple[SplitLeg, ...]
    split_id: str
    metadata: dict[str, Any]
    """What every leg's transaction carries: the caller's metadata and the split id."""
    idempotency_key: str | None
    request_hash: str
    """Fingerprint of the whole request (the split id left out, so that a replay matches)."""

    def leg_key(self, n: int) -> str | None:
        """The idempotency key of the ``n``-th transaction (see :func:`~tokenbank.ids.numbered_key`)."""
        return numbered_key(self.idempotency_key, n, KEY_SUFFIX_ROOM)

    def leg_fingerprint(self, n: int) -> str:
        return fingerprint("split", self.request_hash, n)


def plan_split(
    from_user_id: object,
    amount: object,
    legs: object,
    remainder_to: object,
    idempotency_key: object,
    metadata: object,
    reason: object,
    decimals: int,
) -> SplitPlan:
    """Check the arguments of a split and allocate it (see :func:`allocate`); the remainder goes to
    ``remainder_to`` (added to its leg if it has one), else to the first leg. Raises InvalidAccountError,
    InvalidAmountError, InvalidRequestError, each naming the argument at fault (``legs.2.share``)."""
    with blame("from_user_id"):
        sender = check_account_id(from_user_id, "sender")
    with blame("amount"):
        units = to_base_units(amount, decimals)
    receivers, shares = _legs(legs, sender, decimals)
    if remainder_to is not None:
        with blame("remainder_to"):
            check_account_id(remainder_to, "remainder account")
        if remainder_to == sender:
            raise InvalidAccountError("the remainder cannot go back to the sender", param="remainder_to")
    with blame("metadata"):
        encoded = encode_metadata(metadata)
    caller_metadata: dict[str, Any] = {} if encoded is None else json.loads(encoded)
    if SPLIT_ID_KEY in caller_metadata:
        raise InvalidRequestError(f"metadata key {SPLIT_ID_KEY!r} is set by the split itself", param="metadata")
    with blame("idempotency_key"):
        key = check_idempotency_key(idempotency_key)
    with blame("reason"):
        checked_reason = check_reason(reason)
    allocated, remainder = allocate(units, shares)
    payees = list(zip(receivers, allocated, strict=True))
    if remainder_to is None or remainder_to in receivers:
        target = 0 if remainder_to is None else receivers.index(remainder_to)
        payees[target] = (payees[target][0], payees[target][1] + remainder)
    else:
        assert isinstance(remainder_to, str)
        payees.append((remainder_to, remainder))
    plan_legs = tuple(SplitLeg(user, n) for user, n in payees if n)
    request = (sender, units, [(leg.to_user_id, leg.units) for leg in plan_legs], encoded, checked_reason)
    split_id = new_id()
    return SplitPlan(
        from_user_id=sender, units=units, legs=plan_legs, split_id=split_id,
        metadata={**caller_metadata, SPLIT_ID_KEY: split_id}, idempotency_key=key,
        request_hash=fingerprint("split", *request),
    )  # fmt: skip


def _legs(legs: object, sender: str, decimals: int) -> tuple[list[str], list[Share]]:
    if isinstance(legs, str | bytes | Mapping) or not isinstance(legs, Sequence):
        raise InvalidRequestError("legs must be a list of (to_user_id, share) pairs", param="legs")
    if not 0 < len(legs) <= MAX_LEGS:
        raise InvalidRequestError(f"a split needs 1 to {MAX_LEGS} legs, got {len(legs)}", param="legs")
    receivers: list[str] = []
    shares: list[Share] = []
    for n, leg in enumerate(legs):
        if isinstance(leg, str | bytes) or not isinstance(leg, Sequence) or len(leg) != 2:
            raise InvalidRequestError(f"leg {n} must be a (to_user_id, share) pair", param=f"legs.{n}")
        receiver, share = leg
        with blame(f"legs.{n}.to_user_id"):
            check_account_id(receiver, "receiver")
        if receiver == sender:
            raise InvalidAccountError(f"leg {n} pays the sender itself", param=f"legs.{n}.to_user_id")
        if receiver in receivers:
            raise InvalidAccountError(
                f"leg {n} pays {receiver!r} again (one leg per receiver)", param=f"legs.{n}.to_user_id"
            )
        with blame(f"legs.{n}.share"):
            shares.append(_share(share, decimals))
        receivers.append(receiver)
    return receivers, shares


def _share(share: object, decimals: int) -> Share:
    """A percentage (``"12.5%"``: more than 0, at most 100) or an amount (the rules of every amount)."""
    if not (isinstance(share, str) and share.endswith("%")):
        return to_base_units(share, decimals)
    match = _PERCENT.fullmatch(share) if len(share) <= _MAX_PERCENT_TEXT else None
    if match is None:
        shown = share if len(share) <= _MAX_PERCENT_TEXT else share[:_MAX_PERCENT_TEXT] + "..."
        raise InvalidAmountError(f"a percentage must be a plain decimal and '%', such as '12.5%', got {shown!r}")
    value = Decimal(match.group(1))
    if not 0 < value <= 100:
        raise InvalidAmountError(f"a percentage must be more than 0 and at most 100, got {share!r}")
    return Percent(value)
