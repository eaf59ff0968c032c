"""``bank.formatter``: token amounts as text for people, exact from Decimal, with CLDR locale data via Babel.

Display rounding is ROUND_DOWN by default: a balance of 0.999 shown with two digits reads 0.99, never 1.00,
so a screen never promises more than an account can spend. Pick another :mod:`decimal` rounding mode in
:class:`FormatOptions` for other uses (e.g. ROUND_HALF_EVEN for reports).
"""

from __future__ import annotations

import copy
import dataclasses
import decimal
import functools
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from babel import Locale, UnknownLocaleError
from babel.numbers import NumberPattern, format_compact_decimal, parse_pattern

from tokenbank.amounts import to_decimal
from tokenbank.errors import InvalidAmountError, InvalidRequestError

if TYPE_CHECKING:
    from tokenbank.settings import Settings

MAX_PRECISION = 30
ROUNDING_MODES = frozenset(
    {
        decimal.ROUND_DOWN,
        decimal.ROUND_UP,
        decimal.ROUND_HALF_UP,
        decimal.ROUND_HALF_DOWN,
        decimal.ROUND_HALF_EVEN,
        decimal.ROUND_CEILING,
        decimal.ROUND_FLOOR,
        decimal.ROUND_05UP,
    }
)
# Wide enough for any amount the ledger holds (19 digits) at any precision we allow, so that neither our
# quantize nor Babel's ever rounds or overflows behind our back.
_CONTEXT_PRECISION = 80


@dataclass(frozen=True, slots=True)
class FormatOptions:
    """How :class:`FormatterService` renders an amount. Every field has a default; build variants with
    ``dataclasses.replace`` or pass overrides to :meth:`FormatterService.format`.

    - ``symbol`` / ``symbol_position``: show the token symbol (``TOKEN_SYMBOL``) before or after the number.
    - ``emoji``: lead with the token emoji (``TOKEN_EMOJI``), if the token has one.
    - ``precision``: fractional digits shown. None: the token's decimals (plain) or 1 (compact).
    - ``rounding``: a :mod:`decimal` rounding mode applied at ``precision`` (default ROUND_DOWN).
    - ``trim_zeros``: drop trailing fractional zeros ("12.5" rather than "12.50").
    - ``grouping``: the locale's thousands separators.
    - ``compact`` / ``compact_style``: CLDR short ("1.2M") or long ("1.2 million") forms.
    - ``locale``: a CLDR locale id such as ``en_US``, ``de_DE``, ``fr_FR``.

    Raises InvalidRequestError for an unknown locale, rounding mode or position, or a precision outside
    0..30.
    """

    symbol: bool = True
    symbol_position: Literal["prefix", "suffix"] = "suffix"
    emoji: bool = False
    precision: int | None = None
    rounding: str = decimal.ROUND_DOWN
    trim_zeros: bool = False
    grouping: bool = True
    compact: bool = False
    compact_style: Literal["short", "long"] = "short"
    locale: str = "en_US"
    separator: str = " "

    def __post_init__(self) -> None:
        if self.symbol_position not in ("prefix", "suffix"):
            raise InvalidRequestError(f"symbol_position must be 'prefix' or 'suffix', got {self.symbol_position!r}")
        if self.precision is not None and (
            isinstance(self.precision, bool)
            or not isinstance(self.precision, int)
            or not 0 <= self.precision <= MAX_PRECISION
        ):
            raise InvalidRequestError(f"precision must be an integer between 0 and {MAX_PRECISION}")
        if self.rounding not in ROUNDING_MODES:
            raise InvalidRequestError(f"rounding must be a decimal rounding mode, got {self.rounding!r}")
        if self.compact_style not in ("short", "long"):
            raise InvalidRequestError(f"compact_style must be 'short' or 'long', got {self.compact_style!r}")
        _locale(self.locale)


def _locale(locale_id: object) -> Locale:
    """The parsed CLDR locale. Raises InvalidRequestError."""
    if not isinstance(locale_id, str):
        raise InvalidRequestError(f"locale must be a string such as 'en_US', got {locale_id!r}")
    return _parse_locale(locale_id)


@functools.lru_cache(maxsize=64)
def _parse_locale(locale_id: str) -> Locale:
    # Cached: parsing loads the locale's data files.
    try:
        return Locale.parse(locale_id)
    except (UnknownLocaleError, ValueError):
        raise InvalidRequestError(f"unknown locale {locale_id!r}") from None


@functools.lru_cache(maxsize=256)
def _decimal_pattern(locale_id: str, precision: int, trim_zeros: bool) -> NumberPattern:
    """The locale's own decimal pattern (grouping sizes and all), with our fraction digits."""
    pattern: NumberPattern = copy.copy(_parse_locale(locale_id).decimal_formats[None])
    pattern.frac_prec = (0 if trim_zeros else precision, precision)
    return pattern


class FormatterService:
    """Renders token amounts; ``defaults`` apply when a call passes no options (replace them to change
    the bank-wide look, e.g. ``bank.formatter.defaults = FormatOptions(locale="de_DE")``)."""

    def __init__(self, settings: Settings, defaults: FormatOptions | None = None) -> None:
        self._symbol = settings.symbol
        self._emoji = settings.emoji
        self._decimals = settings.decimals
        self.defaults = defaults or FormatOptions()

    def use_emoji(self, emoji: str | None) -> None:
        """Show the stored token's emoji (the bank calls this whenever it reads the token)."""
        self._emoji = emoji

    def options(self, options: FormatOptions | None = None, **overrides: Any) -> FormatOptions:
        """``options`` (or the defaults) with ``overrides`` applied. Raises InvalidRequestError for an
        unknown option name or a bad value."""
        base = options if options is not None else self.defaults
        if not overrides:
            return base
        try:
            return dataclasses.replace(base, **overrides)
        except TypeError as exc:
            raise InvalidRequestError(f"unknown format option: {exc}") from None

    def format(self, amount: object, options: FormatOptions | None = None, **overrides: Any) -> str:
        """``amount`` (Decimal, int or str; never float) as text, e.g. ``"1,234.50 GOLD"``.

        Raises InvalidAmountError for floats, NaN/Infinity and non-numbers; InvalidRequestError for bad
        options. Negative amounts (e.g. a supply change) are allowed.
        """
        opts = self.options(options, **overrides)
        value = to_decimal(amount)
        if not value.is_finite():
            raise InvalidAmountError(f"amount must be finite, got {amount!r}")
        number = self._number(value, opts)
        parts = []
        if opts.emoji and self._emoji:
            parts.append(self._emoji)
        if opts.symbol and opts.symbol_position == "prefix":
            parts.append(self._symbol)
        parts.append(number)
        if opts.symbol and opts.symbol_position == "suffix":
            parts.append(self._symbol)
        return opts.separator.join(parts)

    def format_number(self, amount: object, options: FormatOptions | None = None, **overrides: Any) -> str:
        """Only the number, without symbol or emoji (for table cells with the unit in the header)."""
        return self.format(amount, options, **{**overrides, "symbol": False, "emoji": False})

    def _number(self, value: Decimal, opts: FormatOptions) -> str:
        locale = _locale(opts.locale)
        # Babel quantizes with the current context: ours makes its rounding the one the caller chose.
        with decimal.localcontext(prec=_CONTEXT_PRECISION, rounding=opts.rounding):
            if opts.compact:
                return self._compact(value, opts, locale)
            precision = self._decimals if opts.precision is None else opts.precision
            rounded = value.quantize(Decimal(1).scaleb(-precision))
            if rounded.is_zero():
                rounded = abs(rounded)  # -0.001 shown at two digits is 0.00, not -0.00
            pattern = _decimal_pattern(opts.locale, precision, opts.trim_zeros)
            return str(pattern.apply(rounded, locale, group_separator=opts.grouping))

    def _compact(self, value: Decimal, opts: FormatOptions, locale: Locale) -> str:
        digits = 1 if opts.precision is None else opts.precision
        if not _compact_divides(value, locale, opts.compact_style):
            # Babel prints numbers it does not abbreviate with all their digits; cap them at ``digits``.
            value = value.quantize(Decimal(1).scaleb(-digits))
            if value.is_zero():
                value = abs(value)
        return format_compact_decimal(value, format_type=opts.compact_style, locale=locale, fraction_digits=digits)


def _compact_divides(value: Decimal, locale: Locale, style: str) -> bool:
    """Whether CLDR abbreviates ``value`` in this locale (1.2M), or prints it whole (999; German 12345)."""
    patterns = locale.compact_decimal_formats[style]["other"]
    for magnitude in sorted((int(m) for m in patterns), reverse=True):
        if abs(value) >= magnitude:
            return bool(parse_pattern(patterns[str(magnitude)]).pattern != "0")
    return False


class BalanceSource(Protocol):
    """Has a formatter and an account's balance: the bank, or its ``balances`` service."""

    @property
    def formatter(self) -> FormatterService: ...

    async def get_balance(self, user_id: str) -> Decimal: ...


async def get_formatted_balance(
    source: BalanceSource, user_id: str, options: FormatOptions | None = None, **overrides: Any
) -> str:
    """The account's spendable balance as text (see :meth:`FormatterService.format`), in the source's formatter.
    Raises InvalidAccountError, InvalidRequestError, StorageError."""
    formatter = source.formatter
    opts = formatter.options(options, **overrides)  # bad options fail before the store is asked
    return formatter.format(await source.get_balance(user_id), opts)
