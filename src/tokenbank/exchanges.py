"""Exchanges: a user pays one token to a counterparty and receives another token from it, in ONE store call.

:func:`exchange` checks both sides, turns each into a ``transfer`` op of its own bank, and has the first bank's
store apply both (one SQL transaction on one connection; one Redis script over the ledger group's hash tag).
The legs are linked through their metadata: see :data:`LINK_KEYS` and docs/exchange.md.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

from tokenbank.amounts import AmountInput, from_base_units, to_base_units, to_decimal
from tokenbank.bank import TokenBank
from tokenbank.errors import (
    ConfigurationError,
    InvalidAccountError,
    InvalidAmountError,
    InvalidRequestError,
    PriceUnavailableError,
    TokenBankError,
    blame,
)
from tokenbank.ids import check_account_id, check_idempotency_key, check_reason, encode_metadata, fingerprint, new_id
from tokenbank.models import Exchange
from tokenbank.services.pricing import ask_provider
from tokenbank.status import Status
from tokenbank.storage.base import OpResult, WriteOp
from tokenbank.storage.capabilities import ExchangeStore

logger = logging.getLogger("tokenbank")

RateProvider = Callable[[], Awaitable[Decimal]]
"""``async def rate() -> Decimal``: how many of the received token one paid token buys, e.g. from a price feed."""
Rate = Decimal | int | str | RateProvider
Side = tuple[TokenBank, str, AmountInput | None]
"""``(bank, account, amount)``: one token's side of an exchange."""

LINK_KEYS = ("exchange_id", "exchange_leg", "exchange_symbol", "exchange_tx_id")
"""Metadata every leg carries beside the caller's: the exchange id (the same on both legs), ``"pay"`` or
``"receive"``, and the other leg's token symbol and transaction id."""


@dataclass(frozen=True, slots=True)
class _Leg:
    name: str
    """``pay`` or ``receive``: also the argument named by errors."""
    bank: TokenBank
    from_user_id: str
    to_user_id: str
    units: int


async def exchange(
    pay: Side,
    receive: Side,
    *,
    rate: Rate | None = None,
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
    reason: str | None = None,
) -> Exchange:
    """The user pays ``amount_a`` of ``bank_a``'s token to the counterparty and receives ``amount_b`` of
    ``bank_b``'s token from it, both or neither, in ONE store call: ``pay=(bank_a, user_id, amount_a)``,
    ``receive=(bank_b, counterparty_id, amount_b)``.

    Both banks must share one store: one SQL database (the same DATABASE_URL and TOKEN_DATABASE_SCHEMA), or on
    Redis (and hybrid) one TOKEN_LEDGER_GROUP. Each leg is a ``transfer`` of its own token under every rule of
    that token's accounts (balance, freeze, closed, limits); a refused leg refuses the exchange with its own
    error and nothing is written. ``amount_b=None`` with ``rate`` (a Decimal, int or str, or an async
    provider returning a Decimal): ``amount_b = amount_a x rate``, rounded DOWN to ``bank_b``'s decimals (the
    user never receives more than the rate gives; less than one base unit stays with the counterparty).

    With ``idempotency_key`` both legs carry it (each token keeps its own keys): the same request again returns
    the same exchange with ``replayed=True``; another request with the key raises IdempotencyConflictError.

    Raises InvalidRequestError (malformed sides, a bank not open, one token twice, both or neither of
    ``amount_b`` and ``rate``, a reserved metadata key), InvalidAccountError, InvalidAmountError (``param``
    names the side, e.g. ``pay.amount``), ConfigurationError (the banks cannot share one store call),
    PriceUnavailableError (the rate provider failed), TokenNotInitializedError, InsufficientBalanceError,
    AccountFrozenError, AccountClosedError, LimitExceededError, IdempotencyConflictError, StorageError."""
    bank_a, user, amount_a = _side(pay, "pay")
    bank_b, counterparty, amount_b = _side(receive, "receive")
    store = store_pair(bank_a, bank_b)
    with blame("pay.user_id"):
        user = check_account_id(user, "user")
    with blame("receive.user_id"):
        counterparty = check_account_id(counterparty, "counterparty")
    if user == counterparty:
        raise InvalidAccountError("the user and the counterparty are the same account", param="receive.user_id")
    with blame("pay.amount"):
        if amount_a is None:
            raise InvalidAmountError("the paid amount is required")
        units_a = to_base_units(amount_a, bank_a.decimals)
    units_b = await _received_units(units_a, bank_a.decimals, amount_b, bank_b.decimals, rate)
    with blame("metadata"):
        encoded = encode_metadata(metadata)
    caller_metadata: dict[str, Any] = {} if encoded is None else json.loads(encoded)
    if reserved := sorted(set(caller_metadata) & set(LINK_KEYS)):
        raise InvalidRequestError(f"metadata keys {reserved} are set by the exchange itself", param="metadata")
    with blame("idempotency_key"):
        key = check_idempotency_key(idempotency_key)
    with blame("reason"):
        checked_reason = check_reason(reason)
    await bank_a.ledger.token_record()
    await bank_b.ledger.token_record()

    legs = (_Leg("pay", bank_a, user, counterparty, units_a), _Leg("receive", bank_b, counterparty, user, units_b))
    request = fingerprint(
        "exchange", bank_a.settings.symbol, user, units_a, bank_b.settings.symbol, counterparty, units_b, encoded,
        checked_reason,
    )  # fmt: skip
    exchange_id = new_id()
    ops = [_op(leg, key, checked_reason, request) for leg in legs]
    ops = [
        replace(op, metadata=_link(caller_metadata, exchange_id, leg, other, other_op))
        for op, leg, other, other_op in zip(ops, legs, reversed(legs), reversed(ops), strict=True)
    ]
    started = time.perf_counter()
    results = await store.apply_exchange(bank_b.storage, ops[0], ops[1])
    elapsed = time.perf_counter() - started
    for leg, op, result in zip(legs, ops, results, strict=True):
        leg.bank.ledger.record([op], [result], elapsed)
    if not all(result.status.ok for result in results):
        raise await _refusal(legs, ops, results)
    pay_tx, receive_tx = (leg.bank.ledger.transaction(r, op) for leg, op, r in zip(legs, ops, results, strict=True))
    return Exchange(
        id=pay_tx.exchange_id or exchange_id, pay_symbol=bank_a.settings.symbol, pay=pay_tx,
        receive_symbol=bank_b.settings.symbol, receive=receive_tx, replayed=pay_tx.replayed and receive_tx.replayed,
    )  # fmt: skip


def _side(side: object, name: str) -> tuple[TokenBank, object, object]:
    if isinstance(side, str | bytes) or not isinstance(side, tuple | list) or len(side) != 3:
        raise InvalidRequestError(f"{name} must be a (bank, user_id, amount) triple", param=name)
    bank, user, amount = side
    if not isinstance(bank, TokenBank):
        raise InvalidRequestError(f"{name}: the first item must be a TokenBank, got {type(bank).__name__}", param=name)
    return bank, user, amount


def store_pair(bank_a: TokenBank, bank_b: TokenBank) -> ExchangeStore:
    """The store that applies both legs. Raises InvalidRequestError (one token twice), ConfigurationError."""
    if bank_a is bank_b or bank_a.settings.symbol == bank_b.settings.symbol:
        raise InvalidRequestError("an exchange needs banks of two different tokens", param="receive")
    for bank, side in ((bank_a, "pay"), (bank_b, "receive")):
        if not bank.is_open:
            raise InvalidRequestError(
                f"{side}: the bank of {bank.settings.symbol} is not open (use it inside 'async with bank')", param=side
            )
    store = bank_a.storage
    if isinstance(store, ExchangeStore):
        problem = store.exchange_problem(bank_b.storage)
        if problem is None:
            return store
    else:
        problem = f"{type(store).__name__} cannot apply an exchange"
    raise ConfigurationError(f"exchange between {bank_a.settings.symbol} and {bank_b.settings.symbol}: {problem}")


async def _received_units(units_a: int, decimals_a: int, amount_b: object, decimals_b: int, rate: object) -> int:
    """Base units of the received token: ``amount_b``, or ``amount_a x rate`` rounded down."""
    if amount_b is not None:
        if rate is not None:
            raise InvalidRequestError("give the received amount or a rate, not both", param="rate")
        with blame("receive.amount"):
            return to_base_units(amount_b, decimals_b)
    if rate is None:
        raise InvalidRequestError("give the received amount or a rate", param="receive.amount")
    with blame("rate"):
        value = await _ask(rate) if callable(rate) else _check_rate(to_decimal(rate), "rate")
    exact = Fraction(units_a) * Fraction(value) * 10**decimals_b / 10**decimals_a
    units = math.floor(exact)
    if units < 1:
        raise InvalidAmountError(
            f"at rate {value} the paid amount buys less than one base unit of the received token", param="rate"
        )
    with blame("rate"):
        return to_base_units(from_base_units(units, decimals_b), decimals_b)  # the range check of every amount


def _check_rate(value: Decimal, what: str) -> Decimal:
    if not value.is_finite() or value <= 0:
        raise InvalidAmountError(f"{what} must be a positive finite number, got {value}")
    return value


async def _ask(provider: Callable[[], Awaitable[object]]) -> Decimal:
    value = await ask_provider(provider, "the rate provider")
    if value == 0:
        raise PriceUnavailableError("the rate provider returned 0: a rate must be positive")
    return value


def _op(leg: _Leg, key: str | None, reason: str | None, request: str) -> WriteOp:
    amount = from_base_units(leg.units, leg.bank.decimals)
    with blame(f"{leg.name}.user_id"):
        op = leg.bank.ledger.ops.transfer(leg.from_user_id, leg.to_user_id, amount, key, None, reason)
    # The exchange's own fingerprint: the same request replays although its exchange id is new.
    return op if key is None else replace(op, fingerprint=fingerprint("exchange", request, leg.name))


def _link(caller: dict[str, Any], exchange_id: str, leg: _Leg, other: _Leg, other_op: WriteOp) -> str:
    links = dict(zip(LINK_KEYS, (exchange_id, leg.name, other.bank.settings.symbol, other_op.tx_id), strict=True))
    with blame("metadata"):
        encoded = encode_metadata({**caller, **links})
    assert encoded is not None
    return encoded


async def _refusal(legs: tuple[_Leg, _Leg], ops: list[WriteOp], results: tuple[OpResult, OpResult]) -> TokenBankError:
    """The error of the refused leg (the other reports BATCH_ABORTED), read by its own bank."""
    index = next((i for i, r in enumerate(results) if not r.status.ok and r.status is not Status.BATCH_ABORTED), 0)
    leg = legs[index]
    [error] = await leg.bank.ledger.refusals([(ops[index], results[index].status)])
    if error.param in (None, "amount"):
        error.param = f"{leg.name}.amount" if error.param == "amount" else leg.name
    logger.info(
        "exchange refused: %s (%s leg)", error.code, leg.name, extra={"operation": "exchange", "code": error.code}
    )
    return error


__all__ = ["LINK_KEYS", "Rate", "RateProvider", "Side", "exchange"]
