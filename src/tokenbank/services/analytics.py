"""``bank.analytics``: volume, activity, top accounts, balance distribution and supply over time.

Reads the SQL ledger of record (``sql`` mode, or the PostgreSQL side of ``hybrid``), so that reports come
from the durable history, in exact Decimal token units; a read replica (``DATABASE_READ_URL``) serves them when
one is configured. Formulas, and what counts, are in
docs/formatting-and-analytics.md.
"""

from __future__ import annotations

import decimal
import functools
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

from sqlalchemy import Connection

from tokenbank import convert
from tokenbank.amounts import from_base_units
from tokenbank.errors import ConfigurationError, InvalidRequestError
from tokenbank.models import Transaction, TransactionType
from tokenbank.storage.capabilities import SqlLedgerAccess
from tokenbank.storage.sql import analytics as sql

if TYPE_CHECKING:
    from tokenbank.ledger import TokenSource

Period = Literal["minute", "hour", "day"]
PERIOD_LENGTH: dict[str, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
PERCENTS = (10, 25, 50, 75, 90, 99)
DEFAULT_TYPES = ("transfer",)
MAX_BUCKETS = 50_000
MAX_LIMIT = 1000
MAX_CHUNK = 50_000
# Mean and Gini are quotients; they keep this many significant digits (ROUND_HALF_EVEN).
QUOTIENT_DIGITS = 28


@dataclass(frozen=True, slots=True)
class VolumeBucket:
    """Transactions whose time falls in ``[start, start + period)`` (and in the asked window)."""

    start: datetime
    count: int
    volume: Decimal


@dataclass(frozen=True, slots=True)
class AccountVolume:
    """One row of :meth:`AnalyticsService.get_top_senders` / ``get_top_receivers``."""

    user_id: str
    volume: Decimal
    count: int
    rank: int


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Linear interpolation between closest ranks (PostgreSQL ``percentile_cont``, numpy's default)."""

    p10: Decimal
    p25: Decimal
    p50: Decimal
    p75: Decimal
    p90: Decimal
    p99: Decimal


@dataclass(frozen=True, slots=True)
class BalanceDistribution:
    """Spendable balances of the counted accounts (see :meth:`AnalyticsService.get_balance_distribution`).
    With no account counted, every figure is 0."""

    accounts: int
    total: Decimal
    mean: Decimal
    median: Decimal
    percentiles: Percentiles
    gini: Decimal
    include_zero: bool
    excluded: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SupplyPoint:
    """Mints and burns in ``[start, start + period)``; ``supply`` is the total supply at the end of it."""

    start: datetime
    minted: Decimal
    burned: Decimal
    net: Decimal
    supply: Decimal


class AnalyticsService:
    """Reports over the ledger. Windows are half-open ``[since, until)`` of aware datetimes; ``until``
    defaults to now. Every method raises ConfigurationError when the bank's store has no SQL ledger
    (``redis`` mode), InvalidRequestError for bad arguments, and StorageError."""

    def __init__(self, ledger: TokenSource) -> None:
        self._ledger = ledger

    # flows -------------------------------------------------------------------------------------------------
    async def get_volume(
        self,
        since: datetime,
        until: datetime | None = None,
        *,
        period: Period = "hour",
        types: Iterable[str] = DEFAULT_TYPES,
    ) -> list[VolumeBucket]:
        """Count and volume per period, one bucket per period from the one holding ``since`` up to ``until``,
        empty periods included (count 0). Periods are UTC; bucketing is done by the database."""
        start, end = _window(since, until)
        starts = _bucket_starts(start, end, period)
        kinds = _types(types)
        store = self._store()
        rows = await store.run_report(lambda c: sql.volume_buckets(c, store.token, start, end, period, kinds))
        found = {row.start: row for row in rows}
        d = self._ledger.decimals
        return [
            VolumeBucket(s, found[s].count, from_base_units(found[s].first, d))
            if s in found
            else VolumeBucket(s, 0, from_base_units(0, d))
            for s in starts
        ]

    async def get_active_accounts(
        self, since: datetime, until: datetime | None = None, *, types: Iterable[str] = DEFAULT_TYPES
    ) -> int:
        """How many distinct accounts sent or received a transaction of ``types`` in the window."""
        start, end = _window(since, until)
        kinds = _types(types)
        store = self._store()
        return await store.run_report(lambda c: sql.active_accounts(c, store.token, start, end, kinds))

    async def get_top_senders(
        self, since: datetime, until: datetime | None = None, *, limit: int = 10, types: Iterable[str] = DEFAULT_TYPES
    ) -> list[AccountVolume]:
        """Accounts that sent the most in the window, highest volume first (ties by account id)."""
        return await self._top("from", since, until, limit, types)

    async def get_top_receivers(
        self, since: datetime, until: datetime | None = None, *, limit: int = 10, types: Iterable[str] = DEFAULT_TYPES
    ) -> list[AccountVolume]:
        """Accounts that received the most in the window, highest volume first (ties by account id)."""
        return await self._top("to", since, until, limit, types)

    async def _top(
        self, side: str, since: datetime, until: datetime | None, limit: int, types: Iterable[str]
    ) -> list[AccountVolume]:
        start, end = _window(since, until)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidRequestError(f"limit must be between 1 and {MAX_LIMIT}")
        kinds = _types(types)
        store = self._store()
        rows = await store.run_report(lambda c: sql.top_accounts(c, store.token, side, start, end, kinds, limit))
        d = self._ledger.decimals
        return [
            AccountVolume(user_id, from_base_units(units, d), count, rank)
            for rank, (user_id, units, count) in enumerate(rows, 1)
        ]

    # stocks ------------------------------------------------------------------------------------------------
    async def get_balance_distribution(
        self, *, include_zero: bool = False, exclude: Iterable[str] | None = None
    ) -> BalanceDistribution:
        """Count, total, mean, median, percentiles and Gini coefficient of spendable balances, from one
        consistent snapshot.

        Counted: accounts with a positive balance, except ``exclude`` (default: the token's stored leaderboard
        exclusions, the treasury unless configured otherwise). ``include_zero`` also counts known accounts whose
        balance is 0 now (accounts that never held tokens are not known to the ledger).
        Gini = sum((2i - n - 1) x_i) / (n sum(x)) over the ascending balances x_1..x_n: 0 when all are equal,
        (n-1)/n when one account holds everything.
        """
        store = self._store()
        if exclude is None:
            excluded = (await self._ledger.get_token_info()).leaderboard_exclude
        else:
            excluded = tuple(_accounts(exclude))

        def read(conn: Connection) -> sql.BalanceStats:
            sql.snapshot(conn)
            return sql.balance_stats(
                conn, store.token, exclude=excluded, include_zero=include_zero, ranks_for=_percentile_ranks
            )

        stats = await store.run_report(read)
        d = self._ledger.decimals
        percentiles = Percentiles(*(_percentile(stats, p, d) for p in PERCENTS))
        with decimal.localcontext(prec=QUOTIENT_DIGITS, rounding=decimal.ROUND_HALF_EVEN):
            mean = (Decimal(stats.total) / stats.count).scaleb(-d) if stats.count else from_base_units(0, d)
            gini = Decimal(0)
            if stats.count and stats.total:
                n, total = stats.count, stats.total
                gini = Decimal(2 * stats.weighted - (n + 1) * total) / Decimal(n * total)
        return BalanceDistribution(
            accounts=stats.count,
            total=from_base_units(stats.total, d),
            mean=mean,
            median=percentiles.p50,
            percentiles=percentiles,
            gini=gini,
            include_zero=include_zero,
            excluded=excluded,
        )

    async def get_supply_over_time(
        self, since: datetime, until: datetime | None = None, *, period: Period = "day"
    ) -> list[SupplyPoint]:
        """Minted, burned and the resulting total supply per period (empty periods included), from one
        consistent snapshot. The supply before ``since`` comes from the ledger, so it includes the initial
        supply and everything minted or burned earlier."""
        start, end = _window(since, until)
        starts = _bucket_starts(start, end, period)
        store = self._store()

        def read(conn: Connection) -> tuple[int, list[sql.Bucket]]:
            sql.snapshot(conn)
            return sql.supply_buckets(conn, store.token, start, end, period)

        supply, rows = await store.run_report(read)
        found = {row.start: row for row in rows}
        d = self._ledger.decimals
        points = []
        for s in starts:
            row = found.get(s)
            minted, burned = (row.first, row.second) if row else (0, 0)
            supply += minted - burned
            points.append(
                SupplyPoint(
                    s,
                    from_base_units(minted, d),
                    from_base_units(burned, d),
                    from_base_units(minted - burned, d),
                    from_base_units(supply, d),
                )
            )
        return points

    # export ------------------------------------------------------------------------------------------------
    async def get_last_seq(self) -> int:
        """The highest transaction ``seq`` of the token now (0 if none): pin it to read a stable range."""
        store = self._store()
        return await store.run_report(lambda c: sql.last_seq(c, store.token))

    async def count_transactions(
        self, since: datetime | None = None, until: datetime | None = None, *, through_seq: int | None = None
    ) -> int:
        """How many transactions (of every type) fall in the window, optionally only up to ``through_seq``."""
        start, end = _bounds(since, until)
        store = self._store()
        return await store.run_report(lambda c: sql.count_transactions(c, store.token, start, end, through_seq))

    async def iter_transaction_chunks(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        through_seq: int | None = None,
        chunk_size: int = 5000,
    ) -> AsyncIterator[list[Transaction]]:
        """Every transaction of the window in ``seq`` order, ``chunk_size`` per query (keyset by seq), so
        that any history can be streamed in constant memory. Pass ``through_seq`` (see
        :meth:`get_last_seq`) to leave out transactions written while iterating."""
        start, end = _bounds(since, until)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or not 1 <= chunk_size <= MAX_CHUNK:
            raise InvalidRequestError(f"chunk_size must be between 1 and {MAX_CHUNK}")
        store = self._store()
        d = self._ledger.decimals
        after = 0
        while True:
            read = functools.partial(
                sql.iter_transactions,
                token=store.token, since=start, until=end, after_seq=after, limit=chunk_size, through_seq=through_seq,
            )  # fmt: skip
            records = await store.run_report(read)
            if records:
                yield [convert.transaction(record, d) for record in records]
                after = records[-1].seq
            if len(records) < chunk_size:
                return

    # plumbing ----------------------------------------------------------------------------------------------
    def _store(self) -> SqlLedgerAccess:
        """The SQL ledger of record: the bank's store itself, or the PostgreSQL side of a hybrid store."""
        storage = self._ledger.storage
        if isinstance(storage, SqlLedgerAccess):
            return storage
        raise ConfigurationError(
            "TOKEN_STORAGE_MODE: analytics needs the sql or hybrid store (reports read the SQL ledger of "
            f"record); this bank uses {self._ledger.settings.storage_mode.value!r}"
        )


def _aware(value: object, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidRequestError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(UTC)


def _bounds(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    start = None if since is None else _aware(since, "since")
    end = None if until is None else _aware(until, "until")
    if start is not None and end is not None and start >= end:
        raise InvalidRequestError("since must be before until")
    return start, end


def _window(since: datetime, until: datetime | None) -> tuple[datetime, datetime]:
    start = _aware(since, "since")
    end = datetime.now(UTC) if until is None else _aware(until, "until")
    if start >= end:
        raise InvalidRequestError("since must be before until")
    return start, end


def _bucket_starts(start: datetime, end: datetime, period: str) -> list[datetime]:
    """UTC starts of the periods that overlap ``[start, end)``. Raises InvalidRequestError."""
    step = PERIOD_LENGTH.get(period) if isinstance(period, str) else None
    if step is None:
        raise InvalidRequestError(f"period must be one of {', '.join(PERIOD_LENGTH)}, got {period!r}")
    first = start.replace(second=0, microsecond=0)
    if period != "minute":
        first = first.replace(minute=0)
    if period == "day":
        first = first.replace(hour=0)
    count = -(-(end - first) // step)
    if count > MAX_BUCKETS:
        raise InvalidRequestError(f"{count} {period} buckets is more than {MAX_BUCKETS}; use a longer period")
    return [first + i * step for i in range(count)]


def _types(types: Iterable[str]) -> tuple[str, ...]:
    try:
        items = (types,) if isinstance(types, str) else tuple(types)
        kinds = tuple(dict.fromkeys(TransactionType(t).value for t in items))
    except (ValueError, TypeError):
        raise InvalidRequestError(f"unknown transaction type in {types!r}") from None
    if not kinds:
        raise InvalidRequestError("types must name at least one transaction type")
    return kinds


def _accounts(exclude: Iterable[str]) -> tuple[str, ...]:
    if isinstance(exclude, str):
        return (exclude,)
    return tuple(exclude)


def _positions(n: int, percent: int) -> tuple[int, int, Fraction]:
    """1-based ranks around the ``percent`` point of n ascending values, and the weight of the upper one."""
    h = Fraction((n - 1) * percent, 100)
    low = h.numerator // h.denominator
    weight = h - low
    return low + 1, low + 1 + (1 if weight else 0), weight


def _percentile_ranks(n: int) -> set[int]:
    if n == 0:
        return set()
    return {rank for p in PERCENTS for rank in _positions(n, p)[:2]}


def _percentile(stats: sql.BalanceStats, percent: int, decimals: int) -> Decimal:
    """Exact, in token units: the weight's denominator divides 100, so the quotient terminates (and a
    context of our own keeps the caller's decimal precision out of it)."""
    if stats.count == 0:
        return from_base_units(0, decimals)
    low, high, weight = _positions(stats.count, percent)
    lower, upper = stats.at_rank[low], stats.at_rank[high]
    with decimal.localcontext(prec=60):
        units = Decimal(lower) + Decimal((upper - lower) * weight.numerator) / weight.denominator
        return units.scaleb(-decimals)
