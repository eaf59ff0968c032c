"""The one exception tree of tokenbank, with a stable ``code`` per class.

::

    TokenBankError
    ├── InvalidAmountError            invalid_amount          (422)
    ├── InvalidAccountError           invalid_account         (422)
    ├── InvalidRequestError           invalid_request         (422)
    ├── InsufficientBalanceError      insufficient_balance    (409)
    ├── SupplyCapExceededError        supply_cap_exceeded     (409)
    ├── IdempotencyConflictError      idempotency_conflict    (409)
    ├── HoldStateError                hold_state              (409)
    ├── TransactionStateError         transaction_state       (409)
    ├── AccountFrozenError            account_frozen          (423)
    ├── AccountClosedError            account_closed          (409)
    ├── LimitExceededError            limit_exceeded          (409)
    ├── BatchAbortedError             batch_aborted           (409)
    ├── TokenNotInitializedError      token_not_initialized   (409)
    ├── TransactionNotFoundError      transaction_not_found   (404)
    ├── HoldNotFoundError             hold_not_found          (404)
    ├── StakeNotFoundError            stake_not_found         (404)
    ├── StakeLockedError              stake_locked            (409)
    ├── WebhookNotFoundError          webhook_not_found       (404)
    ├── MonitorNotFoundError          monitor_not_found       (404)
    ├── FeedGapError                  feed_gap                (410)
    ├── PriceUnavailableError         price_unavailable       (503)
    ├── ConfigurationError            configuration_error     (500)
    └── StorageError                  storage_error           (500)
        └── StorageUnavailableError   storage_unavailable     (503)

Stores report outcomes as :class:`~tokenbank.storage.base.Status` values; :data:`STATUS_TO_ERROR`
is the only place that turns them into exceptions. Some classes stand for more than one outcome (a hold that is
no longer pending or has expired are both :class:`HoldStateError`); ``status`` tells which.

Every error names the argument at fault in ``param`` when one is (``"amount"``, ``"to_user_id"``,
``"idempotency_key"``, ``"hold_id"``...), else None: the name of the bank method's parameter, which is also the
REST API's field name (except ``expires_in``, sent as ``expires_in_seconds``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import ClassVar

from tokenbank.status import Status


class TokenBankError(Exception):
    """Root of every error tokenbank raises on purpose."""

    code: ClassVar[str] = "token_bank_error"
    http_status: ClassVar[int] = 500

    status: Status | None = None
    """The store outcome this error reports, when it reports one (set by :func:`error_for`)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        """The argument at fault (``"amount"``, ``"hold_id"``...), or None when no single one is."""


class InvalidAmountError(TokenBankError):
    """An amount that is not an exact, positive value within the supported range."""

    code = "invalid_amount"
    http_status = 422


class InvalidAccountError(TokenBankError):
    """An account id that is empty, too long, has control characters, or a self-transfer."""

    code = "invalid_account"
    http_status = 422


class InvalidRequestError(TokenBankError):
    """Any other malformed argument (metadata too large, bad expiry, bad cursor...)."""

    code = "invalid_request"
    http_status = 422


class InsufficientBalanceError(TokenBankError):
    """The spendable balance does not cover the debit. ``requested`` is the amount the debit asked for;
    ``available`` the account's spendable balance read right after the refusal (it may have changed since the
    store refused; None when unknown); ``user_id`` the account debited."""

    code = "insufficient_balance"
    http_status = 409

    def __init__(
        self,
        message: str,
        *,
        param: str | None = "amount",
        user_id: str | None = None,
        available: Decimal | None = None,
        requested: Decimal | None = None,
    ) -> None:
        super().__init__(message, param=param)
        self.user_id = user_id
        self.available = available
        self.requested = requested


class SupplyCapExceededError(TokenBankError):
    code = "supply_cap_exceeded"
    http_status = 409


class IdempotencyConflictError(TokenBankError):
    """The idempotency key was already used for a different request."""

    code = "idempotency_conflict"
    http_status = 409


class HoldStateError(TokenBankError):
    """The hold is already captured, voided or expired."""

    code = "hold_state"
    http_status = 409


class TransactionStateError(TokenBankError):
    """The transaction cannot be reversed (wrong type, or reversed already)."""

    code = "transaction_state"
    http_status = 409


class AccountFrozenError(TokenBankError):
    """The account is frozen for this direction (debits or credits) until it is unfrozen or its freeze ends."""

    code = "account_frozen"
    http_status = 423


class AccountClosedError(TokenBankError):
    """The account is closed: every write to or from it is refused, for good."""

    code = "account_closed"
    http_status = 409


class LimitExceededError(TokenBankError):
    """The write would break one of the account's limits (the message names it: max_balance or
    spend_per_window)."""

    code = "limit_exceeded"
    http_status = 409


class BatchAbortedError(TokenBankError):
    """This item of an atomic batch was not applied because another item failed."""

    code = "batch_aborted"
    http_status = 409


class TokenNotInitializedError(TokenBankError):
    code = "token_not_initialized"
    http_status = 409


class TransactionNotFoundError(TokenBankError):
    code = "transaction_not_found"
    http_status = 404


class HoldNotFoundError(TokenBankError):
    code = "hold_not_found"
    http_status = 404


class StakeNotFoundError(TokenBankError):
    code = "stake_not_found"
    http_status = 404


class StakeLockedError(TokenBankError):
    """An unstake before the stake's unlock time; nothing changed."""

    code = "stake_locked"
    http_status = 409


class WebhookNotFoundError(TokenBankError):
    """No webhook endpoint or delivery with that id."""

    code = "webhook_not_found"
    http_status = 404


class MonitorNotFoundError(TokenBankError):
    code = "monitor_not_found"
    http_status = 404


class FeedGapError(TokenBankError):
    """The store no longer holds the next transaction a feed reader asked for (Redis keeps a bounded stream):
    the reader is behind what the store retains and must resynchronise from the ledger of record."""

    code = "feed_gap"
    http_status = 410


class PriceUnavailableError(TokenBankError):
    """The price provider failed, or returned something that is not a finite, non-negative Decimal."""

    code = "price_unavailable"
    http_status = 503


class ConfigurationError(TokenBankError):
    code = "configuration_error"
    http_status = 500


class StorageError(TokenBankError):
    """The store failed in a way that is not the caller's fault."""

    code = "storage_error"
    http_status = 500


class StorageUnavailableError(StorageError):
    """The store cannot be reached right now; the operation did not happen or may be retried."""

    code = "storage_unavailable"
    http_status = 503


STATUS_TO_ERROR: dict[Status, type[TokenBankError]] = {
    Status.INSUFFICIENT_BALANCE: InsufficientBalanceError,
    Status.SUPPLY_CAP_EXCEEDED: SupplyCapExceededError,
    Status.IDEMPOTENCY_CONFLICT: IdempotencyConflictError,
    Status.HOLD_NOT_FOUND: HoldNotFoundError,
    Status.HOLD_NOT_PENDING: HoldStateError,
    Status.HOLD_EXPIRED: HoldStateError,
    Status.CAPTURE_EXCEEDS_HOLD: InvalidAmountError,
    Status.TRANSACTION_NOT_FOUND: TransactionNotFoundError,
    Status.NOT_REVERSIBLE: TransactionStateError,
    Status.ALREADY_REVERSED: TransactionStateError,
    Status.TOKEN_NOT_INITIALIZED: TokenNotInitializedError,
    Status.DUPLICATE_TRANSACTION: IdempotencyConflictError,
    Status.BATCH_ABORTED: BatchAbortedError,
    Status.DEBITS_FROZEN: AccountFrozenError,
    Status.CREDITS_FROZEN: AccountFrozenError,
    Status.ACCOUNT_CLOSED: AccountClosedError,
    Status.MAX_BALANCE_EXCEEDED: LimitExceededError,
    Status.SPEND_LIMIT_EXCEEDED: LimitExceededError,
    Status.ACCOUNT_NOT_EMPTY: TransactionStateError,
    Status.OVERDRAFT_IN_USE: TransactionStateError,
    Status.OVERDRAFT_TOO_LARGE: SupplyCapExceededError,
}

STATUS_MESSAGES: dict[Status, str] = {
    Status.INSUFFICIENT_BALANCE: "insufficient balance",
    Status.SUPPLY_CAP_EXCEEDED: (
        "the mint would exceed the maximum supply (the token's cap, or 2^63-1 base units less every overdraft limit)"
    ),
    Status.IDEMPOTENCY_CONFLICT: "idempotency key already used for a different request",
    Status.HOLD_NOT_FOUND: "hold not found",
    Status.HOLD_NOT_PENDING: "hold is no longer pending",
    Status.HOLD_EXPIRED: "hold has expired",
    Status.CAPTURE_EXCEEDS_HOLD: "capture amount exceeds the held amount",
    Status.TRANSACTION_NOT_FOUND: "transaction not found",
    Status.NOT_REVERSIBLE: "only transfers can be reversed",
    Status.ALREADY_REVERSED: "transaction was already reversed",
    Status.TOKEN_NOT_INITIALIZED: "token is not initialized",
    Status.DUPLICATE_TRANSACTION: "a transaction with this id already exists",
    Status.BATCH_ABORTED: "not applied: another item of the atomic batch failed",
    Status.DEBITS_FROZEN: "account frozen: the debited account may not send",
    Status.CREDITS_FROZEN: "account frozen: the credited account may not receive",
    Status.ACCOUNT_CLOSED: "account closed",
    Status.MAX_BALANCE_EXCEEDED: "limit exceeded: max_balance of the credited account",
    Status.SPEND_LIMIT_EXCEEDED: "limit exceeded: spend_per_window of the debited account",
    Status.ACCOUNT_NOT_EMPTY: "the account still holds funds (balance or held): move them out before closing",
    Status.OVERDRAFT_IN_USE: "the account owes more than the new overdraft allows: bring its balance up first",
    Status.OVERDRAFT_TOO_LARGE: (
        "the total supply plus every overdraft limit may not exceed 2^63-1 base units (the largest balance the "
        "ledger holds)"
    ),
}


STATUS_PARAMS: dict[Status, str | None] = {
    Status.INSUFFICIENT_BALANCE: "amount",
    Status.SUPPLY_CAP_EXCEEDED: "amount",
    Status.IDEMPOTENCY_CONFLICT: "idempotency_key",
    Status.HOLD_NOT_FOUND: "hold_id",
    Status.HOLD_NOT_PENDING: "hold_id",
    Status.HOLD_EXPIRED: "hold_id",
    Status.CAPTURE_EXCEEDS_HOLD: "amount",
    Status.TRANSACTION_NOT_FOUND: "transaction_id",
    Status.NOT_REVERSIBLE: "transaction_id",
    Status.ALREADY_REVERSED: "transaction_id",
    Status.TOKEN_NOT_INITIALIZED: None,
    Status.DUPLICATE_TRANSACTION: "id",
    Status.BATCH_ABORTED: None,
    Status.DEBITS_FROZEN: "from_user_id",
    Status.CREDITS_FROZEN: "to_user_id",
    Status.ACCOUNT_CLOSED: None,
    Status.MAX_BALANCE_EXCEEDED: "amount",
    Status.SPEND_LIMIT_EXCEEDED: "amount",
    Status.ACCOUNT_NOT_EMPTY: "user_id",
    Status.OVERDRAFT_IN_USE: "overdraft",
    Status.OVERDRAFT_TOO_LARGE: "overdraft",
}
"""The argument a refused op's status blames (an insufficient reversal blames its ``transaction_id``: the
caller gave no amount)."""


def error_for(status: Status, context: str | None = None, *, param: str | None = None) -> TokenBankError:
    """Build the exception for a failed store status (the one status -> exception mapping); ``param`` overrides
    the status's usual argument (:data:`STATUS_PARAMS`)."""
    message = STATUS_MESSAGES[status]
    if context:
        message = f"{message}: {context}"
    error = STATUS_TO_ERROR[status](message, param=param or STATUS_PARAMS.get(status))
    error.status = status
    return error


@contextmanager
def blame(param: str) -> Iterator[None]:
    """Name ``param`` as the argument at fault of a TokenBankError raised inside (unless it names one already)."""
    try:
        yield
    except TokenBankError as exc:
        if exc.param is None:
            exc.param = param
        raise
