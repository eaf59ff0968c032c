"""The blocking twin of :func:`tokenbank.exchanges.exchange`, for two blocking banks sharing one event loop."""

from __future__ import annotations

from typing import Any

from tokenbank.amounts import AmountInput
from tokenbank.blocking.bank import TokenBank
from tokenbank.errors import ConfigurationError, InvalidRequestError
from tokenbank.exchanges import Rate, store_pair
from tokenbank.exchanges import exchange as async_exchange
from tokenbank.models import Exchange


def exchange(
    pay: tuple[TokenBank, str, AmountInput | None],
    receive: tuple[TokenBank, str, AmountInput | None],
    *,
    rate: Rate | None = None,
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
    reason: str | None = None,
) -> Exchange:
    """:func:`tokenbank.exchanges.exchange` for blocking banks, with the same arguments, rules, result and
    errors: ``pay=(coins, user_id, amount_a)``, ``receive=(gems, counterparty_id, amount_b)``.

    The exchange uses both banks' connections in one call, and a bank's connections belong to its event loop,
    so both banks must run on one: make the second with ``TokenBank(..., share_loop_with=first)``. An async
    ``rate`` provider is awaited on that loop.

    Raises what :func:`tokenbank.exchanges.exchange` raises; InvalidRequestError also for a side whose bank is not
    an open blocking TokenBank; ConfigurationError also for two banks on different event loops (after the check
    that they share one store, whose error comes first: sharing a loop would not help them)."""
    bank_a, user, amount_a = _blocking_side(pay, "pay")
    bank_b, counterparty, amount_b = _blocking_side(receive, "receive")
    if bank_a._loop.thread is not bank_b._loop.thread:
        store_pair(bank_a.async_bank, bank_b.async_bank)
        raise ConfigurationError(
            f"exchange between {bank_a.settings.symbol} and {bank_b.settings.symbol}: the blocking banks run on "
            "different event loops; make the second with TokenBank(..., share_loop_with=<the first>)"
        )
    return bank_a._loop.run(
        async_exchange, (bank_a.async_bank, user, amount_a), (bank_b.async_bank, counterparty, amount_b),
        rate=rate, idempotency_key=idempotency_key, metadata=metadata, reason=reason,
    )  # fmt: skip


def _blocking_side(side: object, name: str) -> tuple[TokenBank, Any, Any]:
    """The side's bank, account and amount (the async exchange checks the last two). Raises InvalidRequestError."""
    if isinstance(side, str | bytes) or not isinstance(side, tuple | list) or len(side) != 3:
        raise InvalidRequestError(f"{name} must be a (bank, user_id, amount) triple", param=name)
    bank, user, amount = side
    if not isinstance(bank, TokenBank):
        raise InvalidRequestError(
            f"{name}: the first item must be a blocking TokenBank (tokenbank.blocking.TokenBank), "
            f"got {type(bank).__name__}",
            param=name,
        )
    if not bank.async_bank.is_open:
        raise InvalidRequestError(
            f"{name}: the bank of {bank.settings.symbol} is not open (use it inside 'with bank', or call open())",
            param=name,
        )
    return bank, user, amount
