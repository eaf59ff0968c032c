"""``bank.transactions``: history with keyset cursors, lookup by id, and importing existing ledgers."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tokenbank import convert
from tokenbank.amounts import AmountInput
from tokenbank.errors import InvalidRequestError, TransactionNotFoundError, blame
from tokenbank.ids import check_account_id, check_lookup_id
from tokenbank.models import Transaction, TransactionPage, TransactionType
from tokenbank.storage.base import HistoryQuery, OpKind

if TYPE_CHECKING:
    from tokenbank.ledger import Ledger

_CURSOR_PREFIX = "s1:"
_IMPORTABLE = {"transfer": OpKind.TRANSFER, "mint": OpKind.MINT, "burn": OpKind.BURN}


@dataclass(frozen=True, slots=True)
class TransactionImport:
    """A transaction from another ledger, for :meth:`TransactionsService.record_transaction`."""

    type: str
    amount: AmountInput
    from_user_id: str | None = None
    to_user_id: str | None = None
    id: str | None = None
    timestamp: datetime | None = None
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None
    reason: str | None = None


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The sequence number behind an opaque cursor; raises InvalidRequestError for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text.startswith(_CURSOR_PREFIX):
            seq = int(text.removeprefix(_CURSOR_PREFIX))
            if seq > 0:
                return seq
    except (ValueError, binascii.Error, UnicodeDecodeError, TypeError):
        pass
    raise InvalidRequestError("invalid cursor")


class TransactionsService:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def get_transaction_history(
        self,
        user_id: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        types: Iterable[str | TransactionType] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> TransactionPage:
        """An account's transactions, newest first. Pass ``next_cursor`` back for the next page; pages stay
        stable while new transactions arrive. Raises InvalidAccountError, InvalidRequestError."""
        check_account_id(user_id)
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidRequestError("limit must be between 1 and 1000")
        type_names = None
        if types is not None:
            try:
                type_names = tuple(TransactionType(t).value for t in types)
            except ValueError:
                raise InvalidRequestError(f"unknown transaction type in {types!r}") from None
        for bound in (since, until):
            if bound is not None and (not isinstance(bound, datetime) or bound.tzinfo is None):
                raise InvalidRequestError("since/until must be timezone-aware datetimes")
        query = HistoryQuery(
            user_id=user_id,
            limit=limit + 1,
            before_seq=None if cursor is None else decode_cursor(cursor),
            types=type_names,
            since=since,
            until=until,
        )
        await self._ledger.token_record()  # a token that does not exist has no history, not an empty one
        records = await self._ledger.storage.history(query)
        items = [convert.transaction(r, self._ledger.decimals) for r in records[:limit]]
        next_cursor = encode_cursor(items[-1].seq) if len(records) > limit else None
        return TransactionPage(items=items, next_cursor=next_cursor)

    async def get_transaction_by_id(self, transaction_id: str) -> Transaction:
        """Raises TransactionNotFoundError, TokenNotInitializedError."""
        with blame("transaction_id"):
            tx_id = check_lookup_id(transaction_id, "transaction")
        await self._ledger.token_record()
        record = await self._ledger.storage.get_transaction(tx_id)
        if record is None:
            raise TransactionNotFoundError(f"transaction not found: {transaction_id}", param="transaction_id")
        return convert.transaction(record, self._ledger.decimals)

    async def record_transaction(self, dto: TransactionImport | Mapping[str, Any]) -> Transaction:
        """Import a transfer, mint or burn from an existing ledger, keeping its id and time; balances and
        supply change as if it happened now, and an audit entry records the import. Raises the errors of
        the matching write, and IdempotencyConflictError if its id was imported already."""
        item = dto if isinstance(dto, TransactionImport) else TransactionImport(**dict(dto))
        kind = _IMPORTABLE.get(str(item.type))
        if kind is None:
            raise InvalidRequestError("only transfer, mint and burn transactions can be imported")
        op = self._ledger.ops.imported(
            kind, item.amount, from_user_id=item.from_user_id, to_user_id=item.to_user_id, tx_id=item.id,
            timestamp=item.timestamp, key=item.idempotency_key, metadata=item.metadata, reason=item.reason,
        )  # fmt: skip
        return self._ledger.transaction(await self._ledger.apply_one(op))
