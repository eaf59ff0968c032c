"""The leaderboard's reads: top holders and an account's rank, each exact for hot accounts.

The ordinary accounts are walked (or counted) on ix_tb_accounts_leaderboard as before; a hot account's row holds
only part of its balance, so the walk leaves the hot accounts (few) out and they are ranked by their totals. The
statements are built once: building them and their cache keys would cost more than SQLite spends answering them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.storage.sql.schema import UNITS, accounts
from tokenbank.storage.sql.slices import TOTAL, any_hot, hot_totals, not_hot

_TOKEN = sa.bindparam("token", type_=accounts.c.token.type)
_EXCLUDE = sa.bindparam("exclude", expanding=True, type_=accounts.c.user_id.type)
_HOT = hot_totals(_TOKEN)
_ON_BOARD_PLAIN = sa.and_(accounts.c.token == _TOKEN, accounts.c.balance > 0, accounts.c.user_id.not_in(_EXCLUDE))
"""The accounts on the leaderboard of a token without hot accounts: an index range of ix_tb_accounts_leaderboard."""
_ON_BOARD = sa.and_(_ON_BOARD_PLAIN, not_hot(_TOKEN))
"""The ordinary accounts on the leaderboard: the same range, the hot accounts left out."""
_HOT_ON_BOARD = sa.and_(_HOT.c.balance > 0, _HOT.c.user_id.not_in(_EXCLUDE))


def _top_statement() -> sa.Select[tuple[str, int]]:
    """The ordinary accounts' first ``:window`` (offset + limit) by the index walk and the hot accounts by their
    totals, merged in one statement (one snapshot): the page is within the two, however the hot ones rank among
    them (PostgreSQL merges the two ordered inputs, no sort)."""
    walked = (
        sa.select(accounts.c.user_id, accounts.c.balance)
        .where(_ON_BOARD)
        .order_by(accounts.c.balance.desc(), accounts.c.user_id)
        .limit(sa.bindparam("window", type_=sa.Integer))
        .subquery("walked")
    )
    hot = sa.select(_HOT.c.user_id, _HOT.c.balance).where(_HOT_ON_BOARD)
    merged = sa.union_all(sa.select(walked), hot).subquery("merged")
    return (
        sa.select(merged)
        .order_by(merged.c.balance.desc(), merged.c.user_id)
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .offset(sa.bindparam("offset", type_=sa.Integer))
    )


def _page_statement() -> sa.CompoundSelect[tuple[str, int, int]]:
    """One page of the accounts by the index walk (``:limit`` from ``:offset``) as it was before hot accounts, and
    the token's hot accounts beside it (flagged ``hot``): exact when there are none. SQLite sorts a union before its
    OFFSET (the rows it walked past too), so there the page is read this way and :data:`_TOP` serves only a token
    with hot accounts (SQLite's own writes never split one)."""
    page = (
        sa.select(accounts.c.user_id, accounts.c.balance)
        .where(_ON_BOARD_PLAIN)
        .order_by(accounts.c.balance.desc(), accounts.c.user_id)
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .offset(sa.bindparam("offset", type_=sa.Integer))
        .subquery("page")
    )
    hot = sa.select(_HOT.c.user_id, _HOT.c.balance, sa.literal_column("1").label("hot"))
    return sa.union_all(sa.select(page, sa.literal_column("0").label("hot")), hot)


def _ahead_statement(hot: bool) -> sa.Select[int]:
    """How many accounts on the leaderboard rank ahead of ``:user_id`` holding ``:balance`` (``hot``: the token has
    hot accounts; without, the count need not check each row against them)."""
    balance, user_id = sa.bindparam("balance", type_=UNITS), sa.bindparam("user_id", type_=accounts.c.user_id.type)

    def ahead(value: sa.ColumnElement[int], user: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
        return sa.or_(value > balance, sa.and_(value == balance, user < user_id))

    count = sa.select(sa.func.count()).select_from(accounts)
    if not hot:
        return count.where(_ON_BOARD_PLAIN, ahead(accounts.c.balance, accounts.c.user_id))
    ordinary = count.where(_ON_BOARD, ahead(accounts.c.balance, accounts.c.user_id)).scalar_subquery()
    hot_ahead = sa.select(sa.func.count()).select_from(_HOT).where(_HOT_ON_BOARD, ahead(_HOT.c.balance, _HOT.c.user_id))
    return sa.select(ordinary + hot_ahead.scalar_subquery())


_TOP = _top_statement()
_PAGE = _page_statement()
_AHEAD = {hot: _ahead_statement(hot) for hot in (False, True)}
_BALANCE = sa.select(TOTAL, any_hot(_TOKEN)).where(
    accounts.c.token == _TOKEN, accounts.c.user_id == sa.bindparam("user_id")
)
"""The account's balance, and whether the token has hot accounts (which of :data:`_AHEAD` counts)."""


def top_holders(conn: Connection, token: str, limit: int, offset: int, exclude: Sequence[str]) -> list[tuple[str, int]]:
    params = {"token": token, "exclude": list(exclude), "window": offset + limit, "limit": limit, "offset": offset}
    if conn.dialect.name != "postgresql":
        rows = conn.execute(_PAGE, params).all()
        if not any(row.hot for row in rows):  # (a union's rows come in no set order: the page's few sorted here)
            return sorted(((row.user_id, int(row.balance)) for row in rows), key=lambda row: (-row[1], row[0]))
    return [(row.user_id, int(row.balance)) for row in conn.execute(_TOP, params)]


def rank(conn: Connection, token: str, user_id: str, exclude: Sequence[str]) -> int | None:
    if user_id in exclude:
        return None
    row = conn.execute(_BALANCE, {"token": token, "user_id": user_id}).first()
    if row is None or row[0] <= 0:  # only positive balances are ranked (an overdrawn one is not)
        return None
    params = {"token": token, "exclude": list(exclude), "balance": int(row[0]), "user_id": user_id}
    return int(conn.scalar(_AHEAD[bool(row[1])], params) or 0) + 1
