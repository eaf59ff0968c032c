"""Read queries shared by both SQL dialects (every one scoped by token and served by an index), and the token
row's insert beside its read, so the two cannot disagree on a column."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.storage.base import (
    AuditRecord,
    HistoryQuery,
    HoldRecord,
    LotRecord,
    TokenRecord,
    TxRecord,
    exclusions_from_text,
    exclusions_to_text,
)
from tokenbank.storage.sql.schema import accounts, audit, holds, lots, tokens, transactions
from tokenbank.storage.sql.slices import TOTAL, holdings, received_delta, sent_delta
from tokenbank.storage.wire import SQL


def get_token(conn: Connection, token: str) -> TokenRecord | None:
    row = (conn.execute(sa.select(tokens).where(tokens.c.symbol == token))).first()
    if row is None:
        return None
    return TokenRecord(
        symbol=row.symbol,
        name=row.name,
        decimals=row.decimals,
        emoji=row.emoji,
        treasury_account=row.treasury_account,
        initial_supply=int(row.initial_supply),
        max_supply=None if row.max_supply is None else int(row.max_supply),
        total_supply=int(row.total_supply),
        created_at=row.created_at,
        leaderboard_exclude=exclusions_from_text(row.leaderboard_exclude),
    )


def insert_token(conn: Connection, token: TokenRecord) -> None:
    """The token's row with supply 0 (every supply change reaches it through a ledger write)."""
    conn.execute(
        tokens.insert().values(
            symbol=token.symbol, name=token.name, decimals=token.decimals, emoji=token.emoji,
            treasury_account=token.treasury_account, initial_supply=token.initial_supply,
            max_supply=token.max_supply, total_supply=0, created_at=token.created_at,
            leaderboard_exclude=exclusions_to_text(token.leaderboard_exclude),
        )
    )  # fmt: skip


def accounts_after(token: str, after: str, limit: int) -> sa.Select[tuple[str, object, object]]:
    """One page of (user_id, balance, held) in account order, after ``after``: for walks over every account."""
    return (
        sa.select(accounts.c.user_id, accounts.c.balance, accounts.c.held)
        .where(accounts.c.token == token, accounts.c.user_id > after)
        .order_by(accounts.c.user_id)
        .limit(limit)
    )


_BALANCES = sa.select(accounts.c.user_id, TOTAL.label("balance")).where(
    accounts.c.token == sa.bindparam("token"), accounts.c.user_id.in_(sa.bindparam("ids", expanding=True))
)
"""Built once, like _SPENDABLE."""


def get_balances(conn: Connection, token: str, user_ids: Sequence[str]) -> dict[str, int]:
    result = dict.fromkeys(user_ids, 0)
    if user_ids:
        rows = conn.execute(_BALANCES, {"token": token, "ids": list(user_ids)})
        result.update({row.user_id: int(row.balance) for row in rows})
    return result


def get_held(conn: Connection, token: str, user_id: str) -> int:
    value = conn.scalar(sa.select(accounts.c.held).where(accounts.c.token == token, accounts.c.user_id == user_id))
    return int(value or 0)


def sum_balances(conn: Connection, token: str, user_ids: Sequence[str]) -> int:
    if not user_ids:
        return 0
    return int(conn.scalar(holdings(token, user_ids)) or 0)


def _side(token: str, column: sa.Column[str | None], query: HistoryQuery) -> sa.Select[tuple[object, ...]]:
    """One side (sender or receiver) of an account's history: an index walk on (token, side, seq)."""
    stmt = sa.select(transactions).where(transactions.c.token == token, column == query.user_id)
    if query.before_seq is not None:
        stmt = stmt.where(transactions.c.seq < query.before_seq)
    if query.types:
        stmt = stmt.where(transactions.c.type.in_(list(query.types)))
    if query.since is not None:
        stmt = stmt.where(transactions.c.created_at >= query.since)
    if query.until is not None:
        stmt = stmt.where(transactions.c.created_at < query.until)
    return stmt.order_by(transactions.c.seq.desc()).limit(query.limit)


def history(conn: Connection, token: str, query: HistoryQuery) -> list[TxRecord]:
    sent = _side(token, transactions.c.from_user_id, query).subquery()
    received = _side(token, transactions.c.to_user_id, query).subquery()
    merged = sa.union_all(sa.select(sent), sa.select(received)).subquery()
    rows = conn.execute(sa.select(merged).order_by(merged.c.seq.desc()).limit(query.limit))
    return [SQL.tx(row) for row in rows]


def get_transaction(conn: Connection, token: str, tx_id: str) -> TxRecord | None:
    row = (
        conn.execute(sa.select(transactions).where(transactions.c.id == tx_id, transactions.c.token == token))
    ).first()
    return SQL.tx(row) if row else None


def get_hold(conn: Connection, token: str, hold_id: str) -> HoldRecord | None:
    row = (conn.execute(sa.select(holds).where(holds.c.id == hold_id, holds.c.token == token))).first()
    return SQL.hold(row) if row else None


def expired_holds(conn: Connection, token: str, now: datetime, limit: int) -> list[str]:
    rows = conn.execute(
        sa.select(holds.c.id)
        .where(holds.c.token == token, holds.c.status == "pending", holds.c.expires_at <= now)
        .order_by(holds.c.expires_at)
        .limit(limit)
    )
    return [row.id for row in rows]


_SIDES = (
    (transactions.c.from_user_id, transactions.c.from_balance_after, sent_delta(transactions)),
    (transactions.c.to_user_id, transactions.c.to_balance_after, received_delta(transactions)),
)
"""Each side of an entry: its account, the balance it recorded for it (NULL: not known) and what it changed."""


def _last_entry(
    conn: Connection, token: str, user_id: str, at: datetime, *, known: bool = False, before: int | None = None
) -> tuple[int, int | None] | None:
    """(seq, balance after) of the account's last entry at or before ``at`` (``known``: that recorded its balance;
    ``before``: below that seq): one index walk per side, newest first."""
    found = []
    for account, after, _ in _SIDES:
        stmt = sa.select(transactions.c.seq, after).where(
            transactions.c.token == token, account == user_id, transactions.c.created_at <= at
        )
        if known:
            stmt = stmt.where(after.is_not(None))
        if before is not None:
            stmt = stmt.where(transactions.c.seq < before)
        row = conn.execute(stmt.order_by(transactions.c.seq.desc()).limit(1)).first()
        if row is not None:
            found.append((int(row[0]), None if row[1] is None else int(row[1])))
    return max(found, key=lambda entry: entry[0]) if found else None


def balance_at(conn: Connection, token: str, user_id: str, at: datetime) -> int:
    """Balance after the account's last entry at or before ``at``: the balance it recorded. An entry that moved a
    hot account's balance through one of its slices records none for it (its total was not known): then the last
    entry that did, plus what the later ones up to ``at`` changed, in seq order."""
    last = _last_entry(conn, token, user_id, at)
    if last is None:
        return 0
    if last[1] is not None:
        return last[1]
    known = _last_entry(conn, token, user_id, at, known=True, before=last[0])
    since, balance = (0, 0) if known is None else (known[0], known[1] or 0)
    for account, after, delta in _SIDES:
        moved = conn.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(delta), 0)).where(
                transactions.c.token == token, account == user_id, transactions.c.seq > since,
                transactions.c.seq <= last[0], transactions.c.created_at <= at, after.is_(None),
            )
        )  # fmt: skip
        balance += int(moved or 0)
    return balance


def audit_log(conn: Connection, token: str, limit: int, before_id: int | None) -> list[AuditRecord]:
    stmt = sa.select(audit).where(audit.c.token == token)
    if before_id is not None:
        stmt = stmt.where(audit.c.id < before_id)
    rows = conn.execute(stmt.order_by(audit.c.id.desc()).limit(limit))
    return [AuditRecord(id=row.id, action=row.action, details=row.details, timestamp=row.created_at) for row in rows]


# credit lots (LotStore) ------------------------------------------------------------------------------------------
def _spend_order(conn: Connection) -> tuple[sa.ColumnElement[Any], ...]:
    """Soonest expiry first, no expiry last, then the lot id in byte order (PostgreSQL: its "C" collation; SQLite's
    default collation is already byte order)."""
    lot_id = sa.collate(lots.c.id, "C") if conn.dialect.name == "postgresql" else lots.c.id
    return lots.c.expires_at.is_(None), lots.c.expires_at, lot_id


def _utc(moment: datetime) -> datetime:
    """A bound moment in UTC: SQLite keeps times as naive UTC text, and its DateTime drops the offset unconverted."""
    return moment.astimezone(UTC)


def get_lots(conn: Connection, token: str, user_id: str) -> list[LotRecord]:
    rows = conn.execute(
        sa.select(lots)
        .where(lots.c.token == token, lots.c.user_id == user_id, lots.c.remaining > 0)
        .order_by(*_spend_order(conn))
    )
    return [SQL.lot(row) for row in rows]


def expired_lots(conn: Connection, token: str, now: datetime, limit: int) -> list[tuple[str, str]]:
    rows = conn.execute(
        sa.select(lots.c.id, lots.c.user_id)
        .where(lots.c.token == token, lots.c.remaining > 0, lots.c.expires_at <= _utc(now))
        .order_by(*_spend_order(conn)[1:])
        .limit(limit)
    )
    return [(row.id, row.user_id) for row in rows]


def expiring_lots(conn: Connection, token: str, after: datetime, until: datetime, limit: int) -> list[LotRecord]:
    """On the partial index ix_tb_lots_expiry (open lots by expiry)."""
    rows = conn.execute(
        sa.select(lots)
        .where(
            lots.c.token == token,
            lots.c.remaining > 0,
            lots.c.expires_at > _utc(after),
            lots.c.expires_at <= _utc(until),
        )
        .order_by(*_spend_order(conn)[1:])
        .limit(limit)
    )
    return [SQL.lot(row) for row in rows]


def _spendable_statement() -> sa.Select[tuple[str, int]]:
    """Each account's balance (its row's and its slices') less what its lots hold locked at ``:now`` (expired and
    not yet swept, or not yet available: two index ranges, so its other lots are not read), for the accounts
    ``:ids`` of token ``:token``; an account without lots reads no lot row."""
    now = sa.bindparam("now", type_=lots.c.expires_at.type)

    def locked(*when: sa.ColumnElement[bool]) -> sa.ScalarSelect[int]:  # one index range each
        mine = (lots.c.token == accounts.c.token, lots.c.user_id == accounts.c.user_id, lots.c.remaining > 0)
        return sa.select(sa.func.coalesce(sa.func.sum(lots.c.remaining), 0)).where(*mine, *when).scalar_subquery()

    expired = locked(lots.c.expires_at <= now)
    pending = locked(lots.c.available_at > now, sa.or_(lots.c.expires_at.is_(None), lots.c.expires_at > now))
    spendable = TOTAL - sa.case((accounts.c.has_lots, expired + pending), else_=0)
    return sa.select(accounts.c.user_id, spendable.label("spendable")).where(
        accounts.c.token == sa.bindparam("token"), accounts.c.user_id.in_(sa.bindparam("ids", expanding=True))
    )


_SPENDABLE = _spendable_statement()
"""Built once: building the expression and its cache key cost several times what SQLite spends answering it."""


def spendable_balances(conn: Connection, token: str, user_ids: Sequence[str], now: datetime) -> dict[str, int]:
    """Each account's balance less its locked lots, in one query; an account without lots reads no lot row."""
    result = dict.fromkeys(user_ids, 0)
    if user_ids:
        rows = conn.execute(_SPENDABLE, {"token": token, "ids": list(user_ids), "now": _utc(now)})
        result.update({row.user_id: int(row.spendable) for row in rows})
    return result
