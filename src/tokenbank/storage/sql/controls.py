"""Account controls in a SQL store: reading and changing them, and SQLite's checks inside its writer.

PostgreSQL checks the same rules in ``tb_apply`` (migration 0008's SQL); the behaviour suite keeps the two in step.
A change locks the account's row first (created if the account is new), so it is ordered with the account's
writes: a write that starts after the change returns obeys it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from tokenbank.status import Status
from tokenbank.storage.base import CONTROL_COLUMNS, ControlsRecord, OpKind, WriteOp
from tokenbank.storage.sql.schema import account_controls, account_spends, accounts, audit

_COUNTED = (OpKind.TRANSFER, OpKind.BURN, OpKind.HOLD)
"""The debits a spend window counts: what the account's owner spends (a reversal is a correction)."""


def controls_record(row: Any, window_spent: int = 0) -> ControlsRecord:
    """A ``tb_account_controls`` row as a record."""
    return ControlsRecord(
        debits_frozen=bool(row.debits_frozen), credits_frozen=bool(row.credits_frozen),
        frozen_until=row.frozen_until, freeze_reason=row.freeze_reason, closed=bool(row.closed),
        max_balance=row.max_balance, window_amount=row.window_amount, window_seconds=row.window_seconds,
        window_spent=window_spent,
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


def _upsert(conn: Connection, token: str, user_id: str, controls: ControlsRecord) -> None:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    values = {name: getattr(controls, name) for name in CONTROL_COLUMNS}
    conn.execute(
        insert(account_controls)
        .values(token=token, user_id=user_id, **values)
        .on_conflict_do_update(index_elements=["token", "user_id"], set_=values)
    )


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
    unless it is closed, or the change closes it while it still holds funds; in a write transaction of the caller.
    The account's row is locked first (created if new), as every write of the account does."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(accounts).values(token=token, user_id=user_id, balance=0, held=0).on_conflict_do_nothing())
    balance, held = conn.execute(
        sa.select(accounts.c.balance, accounts.c.held)
        .where(accounts.c.token == token, accounts.c.user_id == user_id)
        .with_for_update()
    ).one()
    row = conn.execute(
        sa.select(account_controls).where(account_controls.c.token == token, account_controls.c.user_id == user_id)
    ).first()
    current = ControlsRecord() if row is None else controls_record(row)
    if current.closed:
        return Status.ACCOUNT_CLOSED
    controls = current.merged(change, groups)
    if controls.closed and (balance or held):
        return Status.ACCOUNT_NOT_EMPTY
    _upsert(conn, token, user_id, controls)
    conn.execute(audit.insert().values(token=token, action=action, details=controls.to_json(user_id), created_at=now))
    return Status.OK


def prune_spends(conn: Connection, token: str, now: datetime) -> int:
    """Forget the spends that left their account's window (or whose account has no window any more); run by the
    hold sweeper. The checks never need it (a window sums its own time range): it only keeps the table small."""
    windows = sa.select(account_controls.c.user_id, account_controls.c.window_seconds).where(
        account_controls.c.token == token, account_controls.c.window_seconds.is_not(None)
    )
    pruned = 0
    kept = []
    for user_id, seconds in conn.execute(windows).all():
        kept.append(user_id)
        pruned += conn.execute(
            account_spends.delete().where(
                account_spends.c.token == token,
                account_spends.c.user_id == user_id,
                account_spends.c.at <= now - timedelta(seconds=seconds),
            )
        ).rowcount
    pruned += conn.execute(
        account_spends.delete().where(account_spends.c.token == token, account_spends.c.user_id.not_in(kept))
    ).rowcount
    return pruned


class SqliteControls:
    """The checks of SQLite's writer: the same rules and order as PostgreSQL's ``tb_controls_refusal``."""

    def __init__(self, conn: Connection, token: str) -> None:
        self.conn = conn
        self.token = token
        self._any: bool | None = None

    def _row(self, user_id: str | None) -> ControlsRecord | None:
        if user_id is None:
            return None
        row = self.conn.exec_driver_sql(
            "SELECT debits_frozen, credits_frozen, frozen_until, closed, max_balance, window_amount, window_seconds "
            "FROM tb_account_controls WHERE token = ? AND user_id = ?", (self.token, user_id),
        ).first()  # fmt: skip
        if row is None:
            return None
        return ControlsRecord(
            debits_frozen=bool(row[0]), credits_frozen=bool(row[1]),
            frozen_until=None if row[2] is None else datetime.fromisoformat(str(row[2])), closed=bool(row[3]),
            max_balance=row[4], window_amount=row[5], window_seconds=row[6],
        )  # fmt: skip

    def active(self) -> bool:
        """Whether the token has any controls at all (read once per write transaction)."""
        if self._any is None:
            found = self.conn.exec_driver_sql(
                "SELECT 1 FROM tb_account_controls WHERE token = ? LIMIT 1", (self.token,)
            ).first()
            self._any = found is not None
        return self._any

    def refusal(
        self,
        op: WriteOp,
        debit: str | None,
        credit: str | None,
        amount: int,
        now: str,
        balance_of: Callable[[str], int],
    ) -> Status | None:
        """The status refusing ``op`` (``debit``/``credit``: the accounts it takes from and gives to), or None."""
        debited, credited = self._row(debit), self._row(credit)
        if (debited and debited.closed) or (credited and credited.closed):
            return Status.ACCOUNT_CLOSED
        if debited and debited.debits_frozen and _frozen_now(debited, now):
            return Status.DEBITS_FROZEN
        if credited and credited.credits_frozen and _frozen_now(credited, now):
            return Status.CREDITS_FROZEN
        if debited and debit and op.kind in _COUNTED and debited.window_amount is not None:
            assert debited.window_seconds is not None
            cutoff = _text(datetime.fromisoformat(now) - timedelta(seconds=debited.window_seconds))
            spent = self.conn.exec_driver_sql(
                "SELECT coalesce(sum(amount), 0) FROM tb_account_spends WHERE token = ? AND user_id = ? AND at > ?",
                (self.token, debit, cutoff),
            ).scalar_one()
            if int(spent) + amount > debited.window_amount:
                return Status.SPEND_LIMIT_EXCEEDED
        if (
            credited
            and credit
            and credited.max_balance is not None
            and balance_of(credit) + amount > credited.max_balance
        ):
            return Status.MAX_BALANCE_EXCEEDED
        return None

    def record_spend(self, op: WriteOp, now: str) -> None:
        """After a counted debit was written: remember it for the sender's window (:func:`prune_spends` forgets
        it once it left the window)."""
        if op.kind not in _COUNTED or op.from_user_id is None or op.amount is None:
            return
        debited = self._row(op.from_user_id)
        if debited is None or debited.window_amount is None:
            return
        self.conn.exec_driver_sql(
            "INSERT INTO tb_account_spends (token, user_id, tx_id, amount, at) VALUES (?, ?, ?, ?, ?)",
            (self.token, op.from_user_id, op.tx_id, op.amount, now),
        )


def _frozen_now(controls: ControlsRecord, now: str) -> bool:
    return controls.frozen_until is None or _text(controls.frozen_until) > now


def _text(moment: datetime) -> str:
    """SQLite's stored form of a time (naive UTC text, as the writer writes ``now``)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
