"""The token hash the scripts read and write, to and from :class:`TokenRecord` (ops and results: storage/wire.py).

Amounts travel as decimal strings and times as integer microseconds since the epoch, so nothing passes
through a double on either side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tokenbank.storage.base import TokenRecord, exclusions_from_text, exclusions_to_text
from tokenbank.storage.wire import from_us as from_us
from tokenbank.storage.wire import to_us as to_us


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def pairs(flat: Sequence[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """A flat [field, value, ...] reply (or an already parsed HGETALL) as a dict."""
    if isinstance(flat, Mapping):
        return dict(flat)
    return dict(zip(flat[::2], flat[1::2], strict=True))


def token_fields(token: TokenRecord) -> dict[str, str]:
    """The token hash as create_token.lua writes it (total_supply starts at 0; the mint raises it)."""
    fields = {
        "symbol": token.symbol,
        "name": token.name,
        "decimals": str(token.decimals),
        "emoji": token.emoji,
        "treasury_account": token.treasury_account,
        "initial_supply": str(token.initial_supply),
        "max_supply": None if token.max_supply is None else str(token.max_supply),
        "created_at": str(to_us(token.created_at)),
        "leaderboard_exclude": exclusions_to_text(token.leaderboard_exclude),
    }
    return {key: value for key, value in fields.items() if value is not None}


def token_from_hash(m: Mapping[str, str]) -> TokenRecord | None:
    if not m:
        return None
    return TokenRecord(
        symbol=m["symbol"],
        name=m["name"],
        decimals=int(m["decimals"]),
        emoji=m.get("emoji"),
        treasury_account=m["treasury_account"],
        initial_supply=int(m["initial_supply"]),
        max_supply=_opt_int(m.get("max_supply")),
        total_supply=int(m["total_supply"]),
        created_at=from_us(m["created_at"]),
        leaderboard_exclude=exclusions_from_text(m.get("leaderboard_exclude")),
    )
