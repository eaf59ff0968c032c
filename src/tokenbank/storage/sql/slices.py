"""An account's balance as every SQL read must see it: its ``tb_accounts`` row's plus its slices'.

Only a hot account on PostgreSQL has slices (``tb_account_shards``); elsewhere the table is empty, so what these
expressions add to an ordinary account's read is one probe of an empty index range.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tokenbank.storage.sql.schema import UNITS, account_shards, accounts

shards = account_shards.c
Token = str | sa.ColumnElement[str]
"""A token symbol, or the bound parameter of a statement built once that will carry it."""


def _units(total: sa.ColumnElement[Any]) -> sa.ColumnElement[int]:
    """A sum of balances as a BIGINT (PostgreSQL sums them into NUMERIC): an account's total always fits one, and
    then an expression over it keeps the index's type and order."""
    return sa.cast(total, UNITS)


def slices_sum(token: sa.ColumnElement[str], user_id: sa.ColumnElement[str]) -> sa.ScalarSelect[int]:
    """What the account's slices hold (0 without any): correlated, one index range of the slices' primary key."""
    held = sa.select(sa.func.coalesce(_units(sa.func.sum(shards.balance)), 0)).where(
        shards.token == token, shards.user_id == user_id
    )
    return held.scalar_subquery()


TOTAL: sa.ColumnElement[int] = accounts.c.balance + slices_sum(accounts.c.token, accounts.c.user_id)
"""The balance of the ``tb_accounts`` row a statement reads: its row's plus its slices'."""


def holdings(token: str, user_ids: Sequence[str] | None = None) -> sa.Select[tuple[int]]:
    """What the accounts ``user_ids`` (None: every account of the token) hold, balances and held amounts together:
    their rows' plus their slices', two sums (the slices' an index range of the slices' primary key)."""
    rows = [accounts.c.token == token] + ([] if user_ids is None else [accounts.c.user_id.in_(list(user_ids))])
    mine = [shards.token == token] + ([] if user_ids is None else [shards.user_id.in_(list(user_ids))])
    in_rows = sa.select(sa.func.coalesce(sa.func.sum(accounts.c.balance + accounts.c.held), 0)).where(*rows)
    in_slices = sa.select(sa.func.coalesce(sa.func.sum(shards.balance), 0)).where(*mine)
    return sa.select(in_rows.scalar_subquery() + in_slices.scalar_subquery())


def hot_users(token: Token) -> sa.Select[tuple[str]]:
    """The token's hot accounts (those with slices): few, so a walk over the rows leaves them out cheaply."""
    return sa.select(shards.user_id).where(shards.token == token).distinct()


def any_hot(token: Token) -> sa.Exists:
    """Whether the token has a hot account: without one, a walk need not leave any out (one index probe)."""
    return sa.exists().where(shards.token == token)


def not_hot(token: Token) -> sa.ColumnElement[bool]:
    """A ``tb_accounts`` row whose balance is the account's whole balance (the account has no slices)."""
    return accounts.c.user_id.not_in(hot_users(token))


def slice_totals(token: Token) -> sa.Subquery:
    """``(user_id, total, lowest)`` per hot account: what its slices hold together, and its smallest slice."""
    return (
        sa.select(
            shards.user_id,
            _units(sa.func.sum(shards.balance)).label("total"),
            sa.func.min(shards.balance).label("lowest"),
        )
        .where(shards.token == token)
        .group_by(shards.user_id)
        .subquery("slices")
    )


def hot_totals(token: Token) -> sa.Subquery:
    """``(user_id, balance)`` of each hot account of the token: its row's balance plus its slices' (the slices
    drive it, a primary-key probe of the account's row each)."""
    sliced = slice_totals(token)
    return (
        sa.select(accounts.c.user_id, (accounts.c.balance + sliced.c.total).label("balance"))
        .join(sliced, sa.and_(accounts.c.token == token, accounts.c.user_id == sliced.c.user_id))
        .subquery("hot")
    )


DEBITS = ("transfer", "burn", "hold", "reversal", "grant", "expire")
"""The entry types that take their amount from the sender's balance (a minted grant has no sender)."""
CREDITS = ("transfer", "mint", "capture", "reversal", "grant", "expire")
"""The entry types that add their amount to the receiver's balance (a void gives a hold back to its sender)."""


def sent_delta(t: sa.TableClause) -> sa.ColumnElement[int]:
    """What an entry of ``tb_transactions`` changed its sender's balance by."""
    return sa.case((t.c.type.in_(DEBITS), -t.c.amount), (t.c.type == "void", t.c.amount), else_=0)


def received_delta(t: sa.TableClause) -> sa.ColumnElement[int]:
    """What an entry of ``tb_transactions`` changed its receiver's balance by."""
    return sa.case((t.c.type.in_(CREDITS), t.c.amount), else_=0)
