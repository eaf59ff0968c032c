"""Reporting queries for ``bank.analytics`` and ``tokenbank export`` (SQLAlchemy Core, both dialects).

Every function takes ``(conn, token, ...)`` and speaks base-unit ints. Time windows are half-open,
``since <= created_at < until``, and use the ``(token, created_at)`` index. Sums are exact on both
dialects: PostgreSQL sums BIGINT into NUMERIC; SQLite's 64-bit ``sum()`` raises on overflow, so there a sum
is split into high and low 32-bit halves that each fit, and recombined in Python.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.storage.base import TxRecord
from tokenbank.storage.sql.schema import accounts, tokens, transactions
from tokenbank.storage.sql.slices import any_hot, hot_totals, not_hot
from tokenbank.storage.wire import SQL

PERIODS: dict[str, tuple[str, str]] = {
    # period: (PostgreSQL date_trunc field, SQLite strftime format of the bucket start)
    "minute": ("minute", "%Y-%m-%d %H:%M:00"),
    "hour": ("hour", "%Y-%m-%d %H:00:00"),
    "day": ("day", "%Y-%m-%d 00:00:00"),
}
SCAN_CHUNK = 10_000
"""Rows fetched at a time by the SQLite ordered scan of balances."""

_LOW_BITS = 0xFFFFFFFF
tx = transactions.c


@dataclass(frozen=True, slots=True)
class Bucket:
    """One period: its start (aware UTC), how many rows, and up to two exact sums (base units)."""

    start: datetime
    count: int
    first: int
    second: int = 0


@dataclass(frozen=True, slots=True)
class BalanceStats:
    """Positive (or non-negative) balances of the selected accounts, ranked ascending from 1."""

    count: int
    total: int
    weighted: int
    """Sum of rank x balance, the input of the Gini coefficient."""
    at_rank: dict[int, int] = field(default_factory=dict)


class _ExactSum:
    """``sum(expr)`` that is exact on both dialects (see the module docstring)."""

    def __init__(self, dialect: str, expr: sa.ColumnElement[Any], name: str) -> None:
        self.split = dialect != "postgresql"
        self.name, self.high, self.low = name, f"{name}_hi", f"{name}_lo"
        if self.split:
            self.columns: list[sa.ColumnElement[Any]] = [
                sa.func.sum(expr.bitwise_rshift(32)).label(self.high),
                sa.func.sum(expr.bitwise_and(_LOW_BITS)).label(self.low),
            ]
        else:
            self.columns = [sa.func.sum(expr).label(name)]

    def value(self, row: Any) -> int:
        m = row._mapping
        if self.split:
            return (int(m[self.high] or 0) << 32) + int(m[self.low] or 0)
        return int(m[self.name] or 0)


def snapshot(conn: Connection) -> None:
    """Make the following reads on ``conn`` one consistent snapshot. SQLite: its read transaction already
    is one. Must be the first statement on the connection."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))


def _window(token: str, since: datetime | None, until: datetime | None) -> list[sa.ColumnElement[bool]]:
    clauses = [tx.token == token]
    if since is not None:
        clauses.append(tx.created_at >= since)
    if until is not None:
        clauses.append(tx.created_at < until)
    return clauses


def _bucket(dialect: str, period: str) -> sa.ColumnElement[Any]:
    trunc, fmt = PERIODS[period]
    # Literals, not bind parameters: PostgreSQL only matches GROUP BY to SELECT if the text is identical.
    if dialect == "postgresql":
        utc = sa.func.timezone(sa.literal_column("'UTC'"), tx.created_at)
        return sa.func.date_trunc(sa.literal_column(f"'{trunc}'"), utc).label("bucket")
    return sa.func.strftime(sa.literal_column(f"'{fmt}'"), tx.created_at).label("bucket")


def _bucket_start(value: Any) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def volume_buckets(
    conn: Connection, token: str, since: datetime, until: datetime, period: str, types: Collection[str]
) -> list[Bucket]:
    """Count and volume of the ``types`` transactions per period (only periods that have any)."""
    dialect = conn.dialect.name
    bucket = _bucket(dialect, period)
    volume = _ExactSum(dialect, tx.amount, "volume")
    rows = conn.execute(
        sa.select(bucket, sa.func.count().label("n"), *volume.columns)
        .where(*_window(token, since, until), tx.type.in_(list(types)))
        .group_by(bucket)
        .order_by(bucket)
    )
    return [Bucket(_bucket_start(row.bucket), int(row.n), volume.value(row)) for row in rows]


def active_accounts(conn: Connection, token: str, since: datetime, until: datetime, types: Collection[str]) -> int:
    """Distinct accounts that sent or received a ``types`` transaction in the window."""
    where = [*_window(token, since, until), tx.type.in_(list(types))]
    senders = sa.select(tx.from_user_id.label("user_id")).where(*where, tx.from_user_id.is_not(None))
    receivers = sa.select(tx.to_user_id.label("user_id")).where(*where, tx.to_user_id.is_not(None))
    either = sa.union(senders, receivers).subquery()  # UNION, not UNION ALL: it removes duplicates
    return int(conn.scalar(sa.select(sa.func.count()).select_from(either)) or 0)


def top_accounts(
    conn: Connection,
    token: str,
    side: str,
    since: datetime,
    until: datetime,
    types: Collection[str],
    limit: int,
) -> list[tuple[str, int, int]]:
    """``(user_id, volume, count)`` of the biggest senders (``side="from"``) or receivers (``"to"``),
    highest volume first, ties by user id.

    SQLite orders by ``total()`` (a double: exact below 2**53 base units per account and window); the
    volumes returned are exact either way.
    """
    dialect = conn.dialect.name
    account = tx.from_user_id if side == "from" else tx.to_user_id
    volume = _ExactSum(dialect, tx.amount, "volume")
    order = sa.func.sum(tx.amount) if dialect == "postgresql" else sa.func.total(tx.amount)
    rows = conn.execute(
        sa.select(account.label("user_id"), sa.func.count().label("n"), *volume.columns)
        .where(*_window(token, since, until), tx.type.in_(list(types)), account.is_not(None))
        .group_by(account)
        .order_by(order.desc(), account)
        .limit(limit)
    )
    found = [(str(row.user_id), volume.value(row), int(row.n)) for row in rows]
    return sorted(found, key=lambda item: (-item[1], item[0]))


def supply_buckets(
    conn: Connection, token: str, since: datetime, until: datetime, period: str
) -> tuple[int, list[Bucket]]:
    """The total supply at ``since`` and, per period, minted (``first``: mints and grants without a funder) and
    burned (``second``) units.

    The supply at ``since`` is today's total minus what was minted and burned since then, which reads only
    the window's end of the ledger. Call :func:`snapshot` first so both reads see the same ledger.
    """
    dialect = conn.dialect.name
    mints = sa.or_(tx.type == "mint", sa.and_(tx.type == "grant", tx.from_user_id.is_(None)))  # a grant may mint
    minted = _ExactSum(dialect, sa.case((mints, tx.amount), else_=0), "minted")
    burned = _ExactSum(dialect, sa.case((tx.type == "burn", tx.amount), else_=0), "burned")
    supply_changes = [*_window(token, since, None), sa.or_(mints, tx.type == "burn")]
    total = int(conn.scalar(sa.select(tokens.c.total_supply).where(tokens.c.symbol == token)) or 0)
    later = (conn.execute(sa.select(*minted.columns, *burned.columns).where(*supply_changes))).one()
    at_since = total - minted.value(later) + burned.value(later)
    bucket = _bucket(dialect, period)
    rows = conn.execute(
        sa.select(bucket, sa.func.count().label("n"), *minted.columns, *burned.columns)
        .where(*supply_changes, tx.created_at < until)
        .group_by(bucket)
        .order_by(bucket)
    )
    return at_since, [Bucket(_bucket_start(r.bucket), int(r.n), minted.value(r), burned.value(r)) for r in rows]


@dataclass(frozen=True)
class _Holders:
    """The selected accounts: the ordinary ones (an index range of ix_tb_accounts_leaderboard) and the hot ones
    (None: the token has none), whose rows hold only part of their balance (few: read as their totals)."""

    where: list[sa.ColumnElement[bool]]
    hot: sa.Select[tuple[int]] | None


def _holders(conn: Connection, token: str, exclude: Sequence[str], include_zero: bool) -> _Holders:
    clauses = [accounts.c.token == token, accounts.c.balance >= 0 if include_zero else accounts.c.balance > 0]
    if exclude:
        clauses.append(accounts.c.user_id.not_in(list(exclude)))
    if not conn.scalar(sa.select(any_hot(token))):  # then no row needs checking against the hot accounts
        return _Holders(clauses, None)
    hot = hot_totals(token)
    hot_clauses = [hot.c.balance >= 0 if include_zero else hot.c.balance > 0]
    if exclude:
        hot_clauses.append(hot.c.user_id.not_in(list(exclude)))
    return _Holders([*clauses, not_hot(token)], sa.select(hot.c.balance).where(*hot_clauses))


def balance_stats(
    conn: Connection,
    token: str,
    *,
    exclude: Sequence[str],
    include_zero: bool,
    ranks_for: Callable[[int], Collection[int]],
) -> BalanceStats:
    """Count, sum, rank-weighted sum and the balances at ``ranks_for(count)`` (1-based, ascending).

    PostgreSQL ranks with ``row_number()`` and sums in NUMERIC on the server (its ``percentile_cont`` works
    in double precision, which is not exact above 2**53). SQLite reads the balances in order through the
    leaderboard index, in chunks, and sums with Python ints. Call :func:`snapshot` first.
    """
    holders = _holders(conn, token, exclude, include_zero)
    if conn.dialect.name != "postgresql":
        return _scan_balances(conn, holders, ranks_for)
    ordinary = sa.select(accounts.c.balance).where(*holders.where)
    every = (ordinary if holders.hot is None else sa.union_all(ordinary, holders.hot)).subquery()
    ranked = sa.select(every.c.balance, sa.func.row_number().over(order_by=every.c.balance).label("rn"))
    r = ranked.subquery()
    row = (
        conn.execute(
            sa.select(
                sa.func.count().label("n"),
                sa.func.sum(r.c.balance).label("total"),
                sa.func.sum(sa.cast(r.c.rn, sa.Numeric) * r.c.balance).label("weighted"),
            )
        )
    ).one()
    count = int(row.n)
    wanted = sorted(set(ranks_for(count)))
    at_rank: dict[int, int] = {}
    if wanted:
        picked = conn.execute(sa.select(r.c.rn, r.c.balance).where(r.c.rn.in_(wanted)))
        at_rank = {int(p.rn): int(p.balance) for p in picked}
    return BalanceStats(count, int(row.total or 0), int(row.weighted or 0), at_rank)


def _scan_balances(conn: Connection, holders: _Holders, ranks_for: Callable[[int], Collection[int]]) -> BalanceStats:
    hot = [] if holders.hot is None else sorted(int(row.balance) for row in conn.execute(holders.hot))
    count = int(conn.scalar(sa.select(sa.func.count()).select_from(accounts).where(*holders.where)) or 0) + len(hot)
    wanted = set(ranks_for(count))
    total = weighted = rank = 0
    at_rank: dict[int, int] = {}
    # (balance ASC, user_id DESC) is the leaderboard index (balance DESC, user_id) walked backwards: no sort.
    # The cursor is read SCAN_CHUNK rows at a time, so memory stays flat however many accounts there are.
    ordered = sa.select(accounts.c.balance).where(*holders.where)
    ordered = ordered.order_by(accounts.c.balance, accounts.c.user_id.desc())
    walked = (int(row.balance) for chunk in conn.execute(ordered).partitions(SCAN_CHUNK) for row in chunk)
    for value in heapq.merge(walked, hot):
        rank += 1
        total += value
        weighted += rank * value
        if rank in wanted:
            at_rank[rank] = value
    return BalanceStats(rank, total, weighted, at_rank)


def _export_window(
    token: str, since: datetime | None, until: datetime | None, through_seq: int | None
) -> list[sa.ColumnElement[bool]]:
    clauses = _window(token, since, until)
    if through_seq is not None:
        clauses.append(tx.seq <= through_seq)
    return clauses


def last_seq(conn: Connection, token: str) -> int:
    """The highest transaction sequence number of the token (0 if none)."""
    return int(conn.scalar(sa.select(sa.func.max(tx.seq)).where(tx.token == token)) or 0)


def count_transactions(
    conn: Connection,
    token: str,
    since: datetime | None,
    until: datetime | None,
    through_seq: int | None = None,
) -> int:
    stmt = sa.select(sa.func.count()).select_from(transactions)
    return int(conn.scalar(stmt.where(*_export_window(token, since, until, through_seq))) or 0)


def iter_transactions(
    conn: Connection,
    token: str,
    since: datetime | None,
    until: datetime | None,
    after_seq: int,
    limit: int,
    through_seq: int | None = None,
) -> list[TxRecord]:
    """The next ``limit`` transactions with ``seq > after_seq`` in the window, in seq order: one keyset
    page of an export (pass the last seq back in)."""
    rows = conn.execute(
        sa.select(transactions)
        .where(*_export_window(token, since, until, through_seq), tx.seq > after_seq)
        .order_by(tx.seq)
        .limit(limit)
    )
    return [SQL.tx(row) for row in rows]
