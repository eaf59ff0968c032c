"""The ledger invariants checked inside the SQL store, each as one aggregate query."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.storage.base import CheckRecord
from tokenbank.storage.sql.schema import account_controls, accounts, holds, lots, tokens, transactions
from tokenbank.storage.sql.slices import CREDITS, DEBITS, holdings, slice_totals

_SAMPLE = 5
_LOW_BITS = 0xFFFFFFFF


def _split_sum(expr: sa.ColumnElement[int]) -> tuple[sa.ColumnElement[int], sa.ColumnElement[int]]:
    """Sums of the high and low 32-bit halves: exact on SQLite, whose sum() fails past 2**63 - 1."""
    return sa.func.coalesce(sa.func.sum(expr.op(">>")(sa.literal_column("32"))), 0), sa.func.coalesce(
        sa.func.sum(expr.op("&")(sa.literal_column(str(_LOW_BITS)))), 0
    )


def _join(high: int | None, low: int | None) -> int:
    return int(high or 0) * (_LOW_BITS + 1) + int(low or 0)


def run_checks(conn: Connection, token: str) -> list[CheckRecord]:
    total = conn.scalar(sa.select(tokens.c.total_supply).where(tokens.c.symbol == token))
    if total is None:
        return [CheckRecord("token initialized", False, f"no token {token!r}")]
    total = int(total)
    checks = [CheckRecord("token initialized", True)]

    held_and_balances = int(conn.scalar(holdings(token)) or 0)
    checks.append(
        CheckRecord(
            "balances + held == total supply",
            held_and_balances == total,
            f"balances + held = {held_and_balances}, total supply = {total}",
        )
    )

    high, low = _split_sum(transactions.c.amount)
    t = transactions.c
    # A grant without a funder mints its lot from supply.
    kind = sa.case((sa.and_(t.type == "grant", t.from_user_id.is_(None)), "mint"), else_=t.type).label("kind")
    by_type = {
        row.kind: _join(row.high, row.low)
        for row in conn.execute(
            sa.select(kind, high.label("high"), low.label("low"))
            .where(t.token == token, t.type.in_(("mint", "burn", "grant")))
            .group_by(kind)
        )
    }
    minted, burned = by_type.get("mint", 0), by_type.get("burn", 0)
    checks.append(
        CheckRecord("total supply == minted - burned", total == minted - burned, f"minted {minted}, burned {burned}")
    )

    # A balance may be negative only down to minus the account's overdraft (none: not below zero); a hot account's
    # slices never below zero (only its row may owe).
    floor = -sa.func.coalesce(account_controls.c.overdraft, 0)
    sliced_accounts = slice_totals(token)
    negative = conn.scalar(
        sa.select(sa.func.count())
        .select_from(_with_slices(accounts.outerjoin(account_controls, _same_account()), sliced_accounts))
        .where(
            accounts.c.token == token,
            sa.or_(_total(sliced_accounts) < floor, accounts.c.held < 0, sliced_accounts.c.lowest < 0),
        )
    )
    checks.append(
        CheckRecord("no balance below its overdraft", not negative, f"{negative or 0} accounts below their floor")
    )

    pending = (
        sa.select(holds.c.from_user_id.label("user_id"), sa.func.sum(holds.c.amount).label("pending"))
        .where(holds.c.token == token, holds.c.status == "pending")
        .group_by(holds.c.from_user_id)
        .subquery()
    )
    held_mismatch = (
        conn.execute(
            sa.select(accounts.c.user_id)
            .select_from(accounts.outerjoin(pending, pending.c.user_id == accounts.c.user_id))
            .where(accounts.c.token == token, accounts.c.held != sa.func.coalesce(pending.c.pending, 0))
            .limit(_SAMPLE)
        )
    ).all()
    checks.append(
        CheckRecord(
            "held == pending holds", not held_mismatch, ", ".join(r.user_id for r in held_mismatch) or "all match"
        )
    )

    checks.append(_ledger_matches_balances(conn, token))
    checks.append(_lots_within_grants(conn, token))
    closed_holding = conn.execute(
        sa.select(accounts.c.user_id)
        .select_from(_with_slices(accounts.join(account_controls, _same_account()), sliced_accounts))
        .where(
            accounts.c.token == token,
            account_controls.c.closed,
            (_total(sliced_accounts) != 0) | (accounts.c.held != 0),
        )
        .limit(_SAMPLE)
    ).all()
    checks.append(
        CheckRecord(
            "closed accounts hold nothing", not closed_holding, ", ".join(r.user_id for r in closed_holding) or "none"
        )
    )
    return checks


def _same_account() -> sa.ColumnElement[bool]:
    return sa.and_(account_controls.c.token == accounts.c.token, account_controls.c.user_id == accounts.c.user_id)


def _with_slices(accounts_from: sa.FromClause, sliced: sa.Subquery) -> sa.Join:
    """The accounts (of one token) beside their slices' totals: one aggregate of the slices, not a probe per row."""
    return accounts_from.outerjoin(sliced, sliced.c.user_id == accounts.c.user_id)


def _total(sliced: sa.Subquery) -> sa.ColumnElement[int]:
    """An account's balance: its row's plus its slices'."""
    return accounts.c.balance + sa.func.coalesce(sliced.c.total, 0)


def _ledger_matches_balances(conn: Connection, token: str) -> CheckRecord:
    """Replay the journal per account (credits - debits, holds moved to held) and compare with balances (a hot
    account's: its row's plus its slices')."""
    t = transactions
    deltas = sa.union_all(
        sa.select(t.c.from_user_id.label("user_id"), (-t.c.amount).label("delta")).where(
            t.c.token == token, t.c.type.in_(DEBITS), t.c.from_user_id.is_not(None)
        ),
        sa.select(t.c.to_user_id, t.c.amount).where(t.c.token == token, t.c.type.in_(CREDITS)),
        sa.select(t.c.from_user_id, t.c.amount).where(t.c.token == token, t.c.type == "void"),
    ).subquery()
    high, low = _split_sum(deltas.c.delta)
    derived = sa.select(deltas.c.user_id, high.label("high"), low.label("low")).group_by(deltas.c.user_id).subquery()
    sliced = slice_totals(token)
    rows = conn.execution_options(yield_per=10_000).execute(
        sa.select(accounts.c.user_id, _total(sliced).label("balance"), derived.c.high, derived.c.low)
        .select_from(_with_slices(accounts, sliced).outerjoin(derived, derived.c.user_id == accounts.c.user_id))
        .where(accounts.c.token == token)
    )
    mismatched = [row.user_id for row in rows if _join(row.high, row.low) != row.balance]
    return CheckRecord("balances == replayed ledger", not mismatched, ", ".join(mismatched[:_SAMPLE]) or "all match")


def _lots_within_grants(conn: Connection, token: str) -> CheckRecord:
    """Every lot keeps 0 <= remaining <= amount (what it was granted)."""
    bad = conn.execute(
        sa.select(lots.c.id, lots.c.amount, lots.c.remaining)
        .where(lots.c.token == token, sa.or_(lots.c.remaining < 0, lots.c.remaining > lots.c.amount))
        .order_by(lots.c.id)
        .limit(1)
    ).first()
    detail = "all within their grants" if bad is None else f"lot {bad.id}: remaining {bad.remaining} of {bad.amount}"
    return CheckRecord("lots", bad is None, detail)
