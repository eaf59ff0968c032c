"""The stored token is the truth: how a bank's settings are compared with it, and how a change is checked.

Settings shape a token once, when it is created. Afterwards the stored token decides (name, emoji, decimals,
treasury, max supply, leaderboard exclusions); settings that disagree are reported as :class:`SettingDrift`
and ignored, and only :meth:`TokenBank.configure_token` changes the stored values.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable, Mapping, Set
from decimal import Decimal
from typing import Final

from tokenbank.amounts import from_base_units, to_base_units
from tokenbank.errors import ConfigurationError, InvalidRequestError
from tokenbank.ids import check_account_id
from tokenbank.models import SettingDrift
from tokenbank.settings import Settings
from tokenbank.storage.base import TokenRecord

MAX_EXCLUDED = 1000
"""Most accounts a token's leaderboard may leave out."""
MAX_NAME_LENGTH = 100
MAX_EMOJI_LENGTH = 16

VARIABLES: Final = {
    "name": "TOKEN_NAME",
    "emoji": "TOKEN_EMOJI",
    "treasury_account": "TOKEN_TREASURY_ACCOUNT",
    "max_supply": "TOKEN_MAX_SUPPLY",
    "leaderboard_exclude": "TOKEN_LEADERBOARD_EXCLUDE",
}
"""The settings compared with the stored token (decimals apart: a difference there is an error), in order."""


class Unset(enum.Enum):
    """The type of :data:`UNSET`."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET
"""'Not given' for :meth:`TokenBank.configure_token`, where None has a meaning of its own (no cap, no emoji)."""


def check_decimals(settings: Settings, token: TokenRecord) -> None:
    """Raise ConfigurationError if the settings' decimals are not the stored token's: every amount the bank
    reads or writes would be off by a power of ten."""
    if settings.decimals != token.decimals:
        raise ConfigurationError(
            f"TOKEN_DECIMALS: token {token.symbol} exists with {token.decimals} decimals, settings say "
            f"{settings.decimals}"
        )


def find_drift(settings: Settings, given: Set[str], token: TokenRecord) -> tuple[SettingDrift, ...]:
    """The settings among ``given`` (the fields set by argument or environment, not left at their defaults)
    whose value differs from the stored token's, in :data:`VARIABLES` order."""
    found = []
    for field, variable in VARIABLES.items():
        if field not in given:
            continue
        configured, stored = _values(settings, token, field)
        if configured != stored:
            found.append(SettingDrift(field, variable, _text(field, configured), _text(field, stored)))
    return tuple(found)


def _values(settings: Settings, token: TokenRecord, field: str) -> tuple[object, object]:
    if field == "max_supply":
        stored = None if token.max_supply is None else from_base_units(token.max_supply, token.decimals)
        return settings.max_supply, stored
    if field == "leaderboard_exclude":
        # Left at "the treasury", the settings mean the stored token's treasury; the order does not matter.
        configured = settings.leaderboard_exclude
        wanted = (token.treasury_account,) if configured is None else configured
        return frozenset(wanted), frozenset(token.excluded_accounts)
    return getattr(settings, field), getattr(token, field)


def _text(field: str, value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    if isinstance(value, frozenset):
        return ",".join(sorted(value)) if value else "(no account)"
    return repr(value) if field in ("name", "emoji", "treasury_account") else str(value)


def changes_for(
    token: TokenRecord,
    *,
    name: str | Unset,
    emoji: str | Unset | None,
    max_supply: object,
    treasury_account: str | Unset,
    leaderboard_exclude: Iterable[str] | Unset | None,
) -> dict[str, object]:
    """The stored fields that the given values change, as :meth:`Storage.update_token` takes them (max supply in
    base units). Raises InvalidRequestError, InvalidAmountError, InvalidAccountError for a bad value."""
    wanted: dict[str, object] = {}
    if name is not UNSET:
        wanted["name"] = _check_text(name, "name", MAX_NAME_LENGTH, optional=False)
    if emoji is not UNSET:
        wanted["emoji"] = _check_text(emoji, "emoji", MAX_EMOJI_LENGTH, optional=True)
    if treasury_account is not UNSET:
        wanted["treasury_account"] = check_account_id(treasury_account, "treasury")
    if max_supply is not UNSET:
        wanted["max_supply"] = None if max_supply is None else to_base_units(max_supply, token.decimals)
    if leaderboard_exclude is not UNSET:
        wanted["leaderboard_exclude"] = _check_exclusions(leaderboard_exclude)
    current: Mapping[str, object] = {field: getattr(token, field) for field in wanted}
    return {field: value for field, value in wanted.items() if value != current[field]}


def _check_text(value: object, field: str, limit: int, *, optional: bool) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit or _has_control(value):
        none = " or None" if optional else ""
        raise InvalidRequestError(f"{field} must be text of 1 to {limit} characters without control characters{none}")
    return value


def _has_control(text: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cs") for char in text)


def _check_exclusions(accounts: object) -> tuple[str, ...] | None:
    if accounts is None:
        return None
    if isinstance(accounts, str | bytes) or not isinstance(accounts, Iterable):
        raise InvalidRequestError("leaderboard_exclude must be a list of account ids, or None for the treasury")
    checked = tuple(dict.fromkeys(check_account_id(account, "excluded account") for account in accounts))
    if len(checked) > MAX_EXCLUDED:
        raise InvalidRequestError(f"leaderboard_exclude takes at most {MAX_EXCLUDED} accounts")
    return checked


__all__ = ["MAX_EXCLUDED", "UNSET", "VARIABLES", "Unset", "changes_for", "check_decimals", "find_drift"]
