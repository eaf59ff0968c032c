"""tokenbank: a payment-grade in-app token ledger for Python web applications."""

from tokenbank.bank import TokenBank
from tokenbank.errors import (
    BatchAbortedError,
    ConfigurationError,
    HoldNotFoundError,
    HoldStateError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidAccountError,
    InvalidAmountError,
    InvalidRequestError,
    PriceUnavailableError,
    StorageError,
    StorageUnavailableError,
    SupplyCapExceededError,
    TokenBankError,
    TokenNotInitializedError,
    TransactionNotFoundError,
    TransactionStateError,
)
from tokenbank.events import BalanceUpdate
from tokenbank.models import (
    AuditEntry,
    Check,
    Hold,
    Holder,
    HoldStatus,
    SettingDrift,
    TokenInfo,
    Transaction,
    TransactionPage,
    TransactionType,
    TransferRequest,
    TransferResult,
    VerifyReport,
)
from tokenbank.services.formatter import FormatOptions
from tokenbank.services.transactions import TransactionImport
from tokenbank.settings import Settings, StorageMode, TokenSettings

__version__ = "0.1.0"

__all__ = [
    "AuditEntry",
    "BalanceUpdate",
    "BatchAbortedError",
    "Check",
    "ConfigurationError",
    "FormatOptions",
    "Hold",
    "HoldNotFoundError",
    "HoldStateError",
    "HoldStatus",
    "Holder",
    "IdempotencyConflictError",
    "InsufficientBalanceError",
    "InvalidAccountError",
    "InvalidAmountError",
    "InvalidRequestError",
    "PriceUnavailableError",
    "SettingDrift",
    "Settings",
    "StorageError",
    "StorageMode",
    "StorageUnavailableError",
    "SupplyCapExceededError",
    "TokenBank",
    "TokenBankError",
    "TokenInfo",
    "TokenNotInitializedError",
    "TokenSettings",
    "Transaction",
    "TransactionImport",
    "TransactionNotFoundError",
    "TransactionPage",
    "TransactionStateError",
    "TransactionType",
    "TransferRequest",
    "TransferResult",
    "VerifyReport",
    "__version__",
]
