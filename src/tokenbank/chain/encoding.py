"""The canonical encoding of one journal entry and its chain hash (documented in docs/chain.md).

``hash = SHA-256(b"tokenbank.chain.v1\\n" + canonical_json(fields))`` where the fields are the previous entry's
hash (hex; 64 zeros for the first entry of a token's chain), the token, seq, id, type, both accounts, the amount
in base units as a decimal string, the time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, microseconds), the metadata
object, the idempotency key, the reason, the hold id and the id of the reversed transaction; and, only on the
entries that have them, the credit lots the entry moved (``lots``) and a grant's lot terms (``expires_at``,
``available_at``, ``category``), left out when empty so that entries without lots hash as they always did.
Canonical JSON is UTF-8 with sorted keys and no spaces; a missing value is ``null``. Every store hashes through
this one function.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
"""The previous hash of a token's first chained entry."""

DOMAIN = b"tokenbank.chain.v1\n"


# One encoder, built once: json.dumps builds a new one per call when given options (half its cost here).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value: Any) -> bytes:
    """UTF-8 JSON with sorted keys and no whitespace (NaN and infinities refused)."""
    return _ENCODER.encode(value).encode()


def canonical_time(value: datetime) -> str:
    """A moment as UTC text with exactly six fractional digits (every store keeps microseconds)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"  # "+00:00" -> "Z"


@dataclass(frozen=True, slots=True)
class EntryFields:
    """What the hash covers of one journal entry (besides the previous hash)."""

    token: str
    seq: int
    id: str
    type: str
    from_user_id: str | None
    to_user_id: str | None
    amount: int
    timestamp: str
    metadata: Any
    idempotency_key: str | None
    reason: str | None
    hold_id: str | None
    reverses_id: str | None
    lots: tuple[tuple[str, int], ...] = ()
    """Each credit lot the entry took (+) or gave back (-), in the order the store recorded them."""
    expires_at: str | None = None
    available_at: str | None = None
    category: str | None = None

    @classmethod
    def of(cls, token: str, tx: Any) -> EntryFields:
        """From any record with the journal's attribute names (a ``TxRecord``); ``metadata`` is the stored JSON
        text or None, ``timestamp`` an aware datetime."""
        return cls(
            token=token, seq=int(tx.seq), id=tx.id, type=tx.type, from_user_id=tx.from_user_id,
            to_user_id=tx.to_user_id, amount=int(tx.amount), timestamp=canonical_time(tx.timestamp),
            metadata=None if tx.metadata is None else json.loads(tx.metadata), idempotency_key=tx.idempotency_key,
            reason=tx.reason, hold_id=tx.hold_id, reverses_id=tx.reverses_id, lots=tuple(tx.lots),
            expires_at=_opt_time(tx.expires_at), available_at=_opt_time(tx.available_at), category=tx.category,
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        fields = {
            "token": self.token, "seq": self.seq, "id": self.id, "type": self.type, "from": self.from_user_id,
            "to": self.to_user_id, "amount": str(self.amount), "timestamp": self.timestamp, "metadata": self.metadata,
            "idempotency_key": self.idempotency_key, "reason": self.reason, "hold_id": self.hold_id,
            "reverses_id": self.reverses_id,
        }  # fmt: skip
        if self.lots:
            fields["lots"] = [[lot_id, str(units)] for lot_id, units in self.lots]
        for key, value in (("expires_at", self.expires_at), ("available_at", self.available_at),
                           ("category", self.category)):  # fmt: skip
            if value is not None:
                fields[key] = value
        return fields

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EntryFields:
        """The inverse of :meth:`as_dict` (raises KeyError, TypeError or ValueError on a malformed dict)."""
        return cls(
            token=str(data["token"]), seq=int(data["seq"]), id=str(data["id"]), type=str(data["type"]),
            from_user_id=_opt_str(data["from"]), to_user_id=_opt_str(data["to"]), amount=int(data["amount"]),
            timestamp=str(data["timestamp"]), metadata=data["metadata"],
            idempotency_key=_opt_str(data["idempotency_key"]), reason=_opt_str(data["reason"]),
            hold_id=_opt_str(data["hold_id"]), reverses_id=_opt_str(data["reverses_id"]),
            lots=tuple((str(lot_id), int(units)) for lot_id, units in data.get("lots", ())),
            expires_at=_opt_str(data.get("expires_at")), available_at=_opt_str(data.get("available_at")),
            category=_opt_str(data.get("category")),
        )  # fmt: skip


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_time(value: datetime | None) -> str | None:
    return None if value is None else canonical_time(value)


def encode_entry(prev_hash: str, entry: EntryFields) -> bytes:
    """The exact bytes the chain hash is taken over."""
    return DOMAIN + canonical_json({"prev": prev_hash, **entry.as_dict()})


def entry_hash(prev_hash: str, entry: EntryFields) -> str:
    """The chain hash (lowercase hex SHA-256) of ``entry`` following ``prev_hash``."""
    return hashlib.sha256(encode_entry(prev_hash, entry)).hexdigest()


def chain_hash(prev_hash: str, token: str, tx: Any) -> str:
    """The chain hash of a journal record (see :meth:`EntryFields.of`)."""
    return entry_hash(prev_hash, EntryFields.of(token, tx))
