"""Account controls in a SQL store: reading and changing them, and SQLite's checks inside its writer.

PostgreSQL checks the same rules in ``tb_apply`` (migrations 0008 and 0009's SQL); the behaviour suite keeps the two
in step. A change locks the account's row first (created if the account is new), so it is ordered with the account's
writes: a write that starts after the change returns obeys it.

A spend window is checked against its running total (``spent_total`` on the controls row: the spends after
``spent_through``, the oldest of them at ``spent_oldest``), so a debit reads one row whatever the window holds; the
rows that leave the window are subtracted once each (0009_spend_totals.sql states the rule on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from tokenbank.amounts import MAX_BASE_UNITS
from tokenbank.status import Status
from tokenbank.storage.base import CONTROL_COLUMNS, ControlsRecord, OpKind, WriteOp
from tokenbank.storage.sql.schema import account_controls, account_spends, accounts, audit, lots, tokens

_COUNTED = (OpKind.TRANSFER, OpKind.BURN, OpKind.HOLD, OpKind.GRANT)
"""The debits a spend window counts: what the account's owner spends (a reversal is a correction, an expiry a
sweep; a grant counts only when funded: a minted one debits no account)."""


def controls_record(row: Any, window_spent: int = 0) -> ControlsRecord:
    """A ``tb_account_controls`` row as a record."""
    return ControlsRecord(
        debits_frozen=bool(row.debits_frozen), credits_frozen=bool(row.credits_frozen),
        frozen_until=row.frozen_until, freeze_reason=row.freeze_reason, closed=bool(row.closed),
        max_balance=row.max_balance, window_amount=row.window_amount, window_seconds=row.window_seconds,
        overdraft=row.overdraft, window_spent=window_spent,
    )  # fmt: skip


def read_controls(conn: Connection, token: str, user_id: str, now: datetime) -> ControlsRecord | None:
    row = conn.execute(
        sa.select(account_controls).where(account_controls.c.token == token, account_controls.c.user_id == user_id)
    ).first()
    if row is None:
        return None
    spent = 0
    if row.window_seconds is not None:
        spent = _spent(conn, token, user_id, now - timedelta(seconds=row.window_seconds))
    return controls_record(row, spent)


def _spent(conn: Connection, token: str, user_id: str, after: datetime) -> int:
    total = conn.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(account_spends.c.amount), 0)).where(
            account_spends.c.token == token, account_spends.c.user_id == user_id, account_spends.c.at > after
        )
    )
    return int(total or 0)


def _upsert(conn: Connection, token: str, user_id: str, controls: ControlsRecord, recount: bool) -> None:
    """``recount``: the window may have changed, so its running total is counted again at the next check."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    values: dict[str, Any] = {name: getattr(controls, name) for name in CONTROL_COLUMNS}
    if recount:
        values.update(spent_total=0, spent_through=None, spent_oldest=None)
    conn.execute(
        insert(account_controls)
        .values(token=token, user_id=user_id, **values)
        .on_conflict_do_update(index_elements=["token", "user_id"], set_=values)
    )


_GATHER = sa.text("SELECT tb_hot_gather(:token, CAST(:users AS text[]))")
_SPREAD = sa.text("SELECT tb_hot_spread(:token, CAST(:users AS text[]))")


def write_controls(
    conn: Connection,
    token: str,
    user_id: str,
    change: ControlsRecord,
    groups: Sequence[str],
    action: str,
    now: datetime,
) -> Status:
    """Replace the ``groups`` of the account's controls with ``change``'s (with an audit entry holding the result)
    unless it is closed, or the change closes it while it still holds funds, or leaves it owing more than its
    overdraft allows (a limit lowered below the debt), or raises its overdraft past the room the total supply
    leaves (:func:`overdraft_room`); in a write transaction of the caller.
    The account's row is locked first (created if new), as every write of the account does; on PostgreSQL a hot
    account's slices are then gathered into it (so the checks see its whole balance, and no debit takes a slice
    meanwhile) and spread again at the end."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(accounts).values(token=token, user_id=user_id, balance=0, held=0).on_conflict_do_nothing())
    mine = sa.and_(accounts.c.token == token, accounts.c.user_id == user_id)
    conn.execute(sa.select(accounts.c.user_id).where(mine).with_for_update()).one()
    hot = conn.dialect.name == "postgresql" and bool(conn.scalar(_GATHER, {"token": token, "users": [user_id]}))
    balance, held, has_lots = conn.execute(
        sa.select(accounts.c.balance, accounts.c.held, accounts.c.has_lots).where(mine)
    ).one()
    status = _change_controls(conn, token, user_id, change, groups, action, now, (balance, held, has_lots))
    if hot:
        conn.execute(_SPREAD, {"token": token, "users": [user_id]})
    return status


def _change_controls(
    conn: Connection,
    token: str,
    user_id: str,
    change: ControlsRecord,
    groups: Sequence[str],
    action: str,
    now: datetime,
    account: tuple[int, int, bool],
) -> Status:
    """:func:`write_controls`'s checks and change, the account's row locked and holding its whole balance."""
    balance, held, has_lots = account
    row = conn.execute(
        sa.select(account_controls).where(account_controls.c.token == token, account_controls.c.user_id == user_id)
    ).first()
    current = ControlsRecord() if row is None else controls_record(row)
    if current.closed:
        return Status.ACCOUNT_CLOSED
    controls = current.merged(change, groups)
    if controls.closed and (balance or held or (has_lots and _lots_left(conn, token, user_id))):
        return Status.ACCOUNT_NOT_EMPTY
    if balance < -(controls.overdraft or 0):  # only a change lowering the overdraft below the debt gets here
        return Status.OVERDRAFT_IN_USE
    raised = controls.overdraft if (controls.overdraft or 0) > (current.overdraft or 0) else None
    if raised is not None and raised > overdraft_room(conn, token, user_id):
        return Status.OVERDRAFT_TOO_LARGE
    if "limits" in groups and current.window_seconds is not None:
        forget_spends(conn, token, user_id, current.window_seconds, now if controls.window_seconds else None)
    _upsert(conn, token, user_id, controls, recount=row is None or "limits" in groups)
    conn.execute(audit.insert().values(token=token, action=action, details=controls.to_json(user_id), created_at=now))
    return Status.OK


def _lots_left(conn: Connection, token: str, user_id: str) -> bool:
    """Whether the account has a lot with something left (its balance may be 0 with one: an overdrawn plain part)."""
    left = sa.select(lots.c.id).where(lots.c.token == token, lots.c.user_id == user_id, lots.c.remaining > 0)
    return conn.execute(left.limit(1)).first() is not None


def forget_spends(conn: Connection, token: str, user_id: str, seconds: int, now: datetime | None) -> None:
    """A change of an account's limits forgets the spends that left its window of ``seconds`` by ``now`` (every
    spend when ``now`` is None: the window is removed). So what a changed window counts never depends on when
    the sweeper last ran: a lengthened window counts what the old one still held at the change, and later spends."""
    s = account_spends.c
    forgotten = account_spends.delete().where(s.token == token, s.user_id == user_id)
    if now is not None:
        forgotten = forgotten.where(s.at <= now - timedelta(seconds=seconds))
    conn.execute(forgotten)


def overdraft_room(conn: Connection, token: str, user_id: str) -> int:
    """The largest overdraft ``user_id`` may have: the total supply plus every overdraft limit stays within 2^63-1
    base units, so no balance or held amount can pass what a store holds (a balance is at most the supply plus
    what the other accounts may owe). The token's row is locked after the account's, the order of every write
    (a mint locks it too): a mint either sees the new limit or this check sees the mint."""
    supply = conn.execute(sa.select(tokens.c.total_supply).where(tokens.c.symbol == token).with_for_update()).scalar()
    c = account_controls.c
    others = conn.execute(
        sa.select(sa.func.sum(c.overdraft)).where(c.token == token, c.overdraft.is_not(None), c.user_id != user_id)
    ).scalar()
    return MAX_BASE_UNITS - int(supply or 0) - int(others or 0)


def overdraft_total_sqlite(raw: Any, token: str) -> int:
    """Every overdraft limit of the token added up (SQLite's writer, before a mint)."""
    row = raw.execute(
        "SELECT sum(overdraft) FROM tb_account_controls WHERE token = ? AND overdraft IS NOT NULL", (token,)
    ).fetchone()
    return int(row[0] or 0)


def prune_spends(conn: Connection, token: str, now: datetime) -> int:
    """Forget the spends that left their account's window (or whose account has no window any more); run by the
    hold sweeper. The running totals drop those rows first (under the accounts' locks on PostgreSQL, taken in the
    write paths' order); the checks never need the pruning: it only keeps the table small."""
    c = account_controls.c
    windowed = sa.and_(c.token == token, c.window_amount.is_not(None))
    stale = [
        user_id
        for user_id, seconds, through, oldest in conn.execute(
            sa.select(c.user_id, c.window_seconds, c.spent_through, c.spent_oldest).where(windowed)
        ).all()
        if through is None or (oldest is not None and _aware(oldest) <= now - timedelta(seconds=seconds))
    ]
    stale.sort()
    if conn.dialect.name == "postgresql":
        if stale:
            conn.execute(
                sa.select(accounts.c.user_id)
                .where(accounts.c.token == token, accounts.c.user_id.in_(stale))
                .order_by(accounts.c.user_id)
                .with_for_update()
            ).all()
            conn.execute(sa.text("SELECT tb_spend_refresh(:token, :users, :now)"),
                         {"token": token, "users": stale, "now": now})  # fmt: skip
    else:
        for user_id in stale:
            refresh_sqlite(_raw(conn), token, user_id, _text(now))
    s = account_spends.c
    kept = sa.select(c.user_id).where(windowed, c.spent_through.is_not(None))
    pruned = conn.execute(
        account_spends.delete().where(
            s.token == token,
            sa.or_(
                s.user_id.not_in(kept),
                s.at <= sa.select(c.spent_through).where(c.token == token, c.user_id == s.user_id).scalar_subquery(),
            ),
        )
    ).rowcount
    return int(pruned)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _raw(conn: Connection) -> Any:
    """The sqlite3 connection under ``conn`` (same transaction): the controls' statements skip SQLAlchemy's
    per-statement cost, which is most of what a check would otherwise add to a write."""
    return conn.connection.driver_connection


Totals = tuple[int, str | None, str | None]
"""A window's running total as SQLite stores it: (spent_total, spent_through, spent_oldest)."""

_SUMS = "SELECT coalesce(sum(amount), 0) FROM tb_account_spends WHERE token = ? AND user_id = ? AND at > ? AND at <= ?"
_SUM_AFTER = "SELECT coalesce(sum(amount), 0) FROM tb_account_spends WHERE token = ? AND user_id = ? AND at > ?"
_OLDEST = "SELECT min(at) FROM tb_account_spends WHERE token = ? AND user_id = ? AND at > ?"
_SAVE_TOTALS = (
    "UPDATE tb_account_controls SET spent_total = ?, spent_through = ?, spent_oldest = ? "
    "WHERE token = ? AND user_id = ?"
)


def _window_totals(raw: Any, token: str, user_id: str, cut: str, totals: Totals) -> Totals:
    """``totals`` brought to the window starting after ``cut``: counted from the rows if never counted, else with
    the rows that left the window since subtracted (nothing to do, without a statement, when none left)."""
    total, through, oldest = totals
    if through is None:
        total = int(raw.execute(_SUM_AFTER, (token, user_id, cut)).fetchone()[0])
    elif oldest is not None and oldest <= cut:
        total -= int(raw.execute(_SUMS, (token, user_id, through, cut)).fetchone()[0])
    else:
        return totals
    return total, cut, raw.execute(_OLDEST, (token, user_id, cut)).fetchone()[0]


def refresh_sqlite(raw: Any, token: str, user_id: str, now: str) -> None:
    """Bring one account's running total to the window ending at ``now`` and store it (SQLite)."""
    row = raw.execute(
        "SELECT window_seconds, spent_total, spent_through, spent_oldest FROM tb_account_controls "
        "WHERE token = ? AND user_id = ? AND window_amount IS NOT NULL", (token, user_id),
    ).fetchone()  # fmt: skip
    if row is None:
        return
    before: Totals = (int(row[1]), row[2], row[3])
    after = _window_totals(raw, token, user_id, _cut(now, row[0]), before)
    if after != before:
        raw.execute(_SAVE_TOTALS, (*after, token, user_id))


def _cut(now: str, seconds: int) -> str:
    """The start of the window of ``seconds`` ending at ``now`` (SQLite's time text): spends after it count."""
    return _text(datetime.fromisoformat(now) - timedelta(seconds=seconds))


_CONTROLS_OF = (
    "SELECT c.user_id, c.debits_frozen, c.credits_frozen, c.frozen_until, c.closed, c.max_balance, c.window_amount,"
    " c.window_seconds, c.spent_total, c.spent_through, c.spent_oldest, a.balance, c.overdraft"
    " FROM tb_account_controls c LEFT JOIN tb_accounts a ON a.token = c.token AND a.user_id = c.user_id"
    " WHERE c.token = ? AND c.user_id IN (?, ?)"
)


class SqliteControls:
    """The checks of SQLite's writer: the same rules and order as PostgreSQL's ``tb_controls_refusal``. One
    statement reads both accounts' controls (and the credited balance); a counted debit adds to the sender's
    running total. The spends and totals of a write transaction are written together by :meth:`flush` at its
    end (the transaction's own later checks read them from here; any read of the spends table flushes first)."""

    def __init__(self, conn: Connection, token: str) -> None:
        self.conn = conn
        self.raw = _raw(conn)
        self.token = token
        self._any: bool | None = None
        self._window: tuple[str, Totals] | None = None  # the checked sender's window totals, for record_spend
        self._totals: dict[str, Totals] = {}  # the totals this transaction changed, not yet written
        self._spends: list[tuple[str, str, str, int, str]] = []  # its spends, not yet written
        self.floor: tuple[str, int] | None = None
        """(account, overdraft) of the op :meth:`refusal` last checked, if the account it debits has one."""

    def active(self) -> bool:
        """Whether the token has any controls at all (read once per write transaction)."""
        if self._any is None:
            found = self.raw.execute("SELECT 1 FROM tb_account_controls WHERE token = ? LIMIT 1", (self.token,))
            self._any = found.fetchone() is not None
        return self._any

    def flush(self) -> None:
        """Write the transaction's spends and changed totals (before it commits, or before the spends are read)."""
        if self._spends:
            self.raw.executemany(
                "INSERT INTO tb_account_spends (token, user_id, tx_id, amount, at) VALUES (?, ?, ?, ?, ?)",
                self._spends,
            )
            self._spends = []
        if self._totals:
            self.raw.executemany(_SAVE_TOTALS, [(*totals, self.token, user) for user, totals in self._totals.items()])
            self._totals = {}

    def refusal(self, op: WriteOp, debit: str | None, credit: str | None, amount: int, now: str) -> Status | None:
        """The status refusing ``op`` (``debit``/``credit``: the accounts it takes from and gives to), or None."""
        self._window = self.floor = None
        if debit is None and credit is None:
            return None
        rows = {row[0]: row for row in self.raw.execute(_CONTROLS_OF, (self.token, debit, credit)).fetchall()}
        debited, credited = rows.get(debit), rows.get(credit)
        if debit and debited and debited[12]:
            self.floor = (debit, int(debited[12]))
        if (debited and debited[4]) or (credited and credited[4]):
            return Status.ACCOUNT_CLOSED
        if debited and debited[1] and _frozen_now(debited[3], now):
            return Status.DEBITS_FROZEN
        if credited and credited[2] and _frozen_now(credited[3], now):
            return Status.CREDITS_FROZEN
        if debited and debit and op.kind in _COUNTED and debited[6] is not None:
            cut = _cut(now, debited[7])
            totals = self._totals.get(debit) or (int(debited[8]), debited[9], debited[10])
            if totals[1] is None or (totals[2] is not None and totals[2] <= cut) or cut < totals[1]:
                self.flush()  # the spends table is read: it holds every spend of this transaction first
            totals = _window_totals(self.raw, self.token, debit, cut, totals)
            spent, through = totals[0], totals[1]
            if through is not None and cut < through:  # a window starting before the total's: the rows between
                spent += int(self.raw.execute(_SUMS, (self.token, debit, cut, through)).fetchone()[0])
            if spent + amount > debited[6]:
                return Status.SPEND_LIMIT_EXCEEDED
            self._window = (debit, totals)
        if credited and credited[5] is not None and int(credited[11] or 0) + amount > credited[5]:
            return Status.MAX_BALANCE_EXCEEDED
        return None

    def record_spend(self, op: WriteOp, now: str) -> None:
        """After a counted debit was written: remember it for the sender's window and add it to the window's
        running total (:func:`prune_spends` forgets it once it left the window)."""
        window, self._window = self._window, None
        if op.kind not in _COUNTED or window is None or window[0] != op.from_user_id or op.amount is None:
            return
        self._spends.append((self.token, op.from_user_id, op.tx_id, op.amount, now))
        total, through, oldest = window[1]
        if through is not None and now > through:  # else it is older than the total's start: not in it
            total += op.amount
            oldest = now if oldest is None or now < oldest else oldest
        self._totals[op.from_user_id] = (total, through, oldest)


def _frozen_now(until: Any, now: str) -> bool:
    """Whether a freeze ending at ``until`` (SQLite's stored text; None: no end) still holds at ``now``."""
    return until is None or _text(datetime.fromisoformat(str(until))) > now


def _text(moment: datetime) -> str:
    """SQLite's stored form of a time (naive UTC text, as the writer writes ``now``)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(" ", "microseconds")  # "%Y-%m-%d %H:%M:%S.%f", several times faster than strftime
