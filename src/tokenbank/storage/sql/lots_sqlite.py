"""Credit lots in SQLite's writer: what a debit takes from the debited account's lots, what a release gives back,
a grant's new lot and an expiry's sweep (the rules of docs/lots.md, as PostgreSQL's 0013_lots.sql applies them).

An account's lots are read only when its row says ``has_lots`` (which the debit's UPDATE returns): an account
without lots reads no lot row. An account with a few lots is read whole, once, for both what they lock and the
spend order; one with more is read along the indexes (what is locked: the expired ones at the head of the spend
order and the pending ones; then the spendable ones in spend order, until the debit is covered), so a debit's cost
does not grow with lots it does not touch. Times are SQLite's stored text (``sqlite_time``), which orders as the
moments do.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from typing import Any

from tokenbank.storage.base import LotMoves

DEBIT = (
    "UPDATE tb_accounts SET balance = balance - ?, held = held + ? "
    "WHERE token = ? AND user_id = ? AND balance >= ? RETURNING balance, has_lots"
)
"""A debit of ``amount`` (``to_held`` of it moved to held) refused unless the balance covers ``covered`` (the
amount less the account's overdraft); parameters ``(amount, to_held, token, user_id, covered)``. An account with
lots then checks what they lock (:meth:`SqliteLots.take`)."""

UNDO_DEBIT = "UPDATE tb_accounts SET balance = balance + ?, held = held - ? WHERE token = ? AND user_id = ?"

CREDIT_OWNER = (
    "INSERT INTO tb_accounts (token, user_id, balance, held, has_lots) VALUES (?, ?, ?, 0, 1) "
    "ON CONFLICT (token, user_id) DO UPDATE SET balance = balance + excluded.balance, has_lots = 1 "
    "RETURNING balance"
)
"""A grant's credit of its lot's owner, whose row then says it has lots."""

FEW = 32
"""An account with at most this many open lots is read whole in one statement."""

_FIRST_FEW = (
    "SELECT id, remaining, available_at, expires_at FROM tb_lots WHERE token = ? AND user_id = ? AND remaining > 0 "
    f"LIMIT {FEW + 1}"
)
"""Up to ``FEW`` + 1 of the account's lots with something left, in no order: all of them when there are few."""

_EXPIRED = (
    "SELECT coalesce(sum(remaining), 0) FROM tb_lots WHERE token = ? AND user_id = ? AND remaining > 0 "
    "AND expires_at <= ?"
)
_PENDING = (
    "SELECT coalesce(sum(remaining), 0) FROM tb_lots WHERE token = ? AND user_id = ? AND remaining > 0 "
    "AND available_at > ? AND (expires_at IS NULL OR expires_at > ?)"
)
"""What the account's lots lock at a moment: the expired ones, then the pending ones not already counted."""

_EXPIRING_IN_ORDER = (
    "SELECT id, remaining, available_at FROM tb_lots WHERE token = ? AND user_id = ? AND remaining > 0 "
    "AND expires_at > ? ORDER BY expires_at, id"
)
_LASTING_IN_ORDER = (
    "SELECT id, remaining, available_at FROM tb_lots WHERE token = ? AND user_id = ? AND remaining > 0 "
    "AND expires_at IS NULL ORDER BY id"
)
"""The account's unexpired lots in spend order, along ``ix_tb_lots_spend``: soonest expiry first, then those
without an expiry; between equal expiries by id (byte order: SQLite's default BINARY collation)."""

_MOVE = "UPDATE tb_lots SET remaining = remaining - ? WHERE token = ? AND id = ?"
_INSERT_LOT = (
    "INSERT INTO tb_lots (token, id, user_id, amount, remaining, expires_at, available_at, category, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class SqliteLots:
    """The lot statements of one write transaction (on the sqlite3 connection under the writer's, as the controls'
    checks are: same transaction, without SQLAlchemy's per-statement cost)."""

    def __init__(self, raw: Any, token: str) -> None:
        self.raw = raw
        self.token = token

    def take(self, user_id: str, amount: int, covered: int, before: int, now: str) -> LotMoves | None:
        """After the account's debit of ``amount`` was written: None if its balance ``before`` it, less what its
        lots lock at ``now`` (pending, or expired and not yet swept), does not cover ``covered`` (the caller undoes
        the debit), else take ``amount`` from its spendable lots in spend order (the moves, positive)."""
        rows = self.raw.execute(_FIRST_FEW, (self.token, user_id)).fetchall()
        spendable: Iterator[tuple[str, int]]
        if len(rows) <= FEW:
            rows.sort(key=_spend_order)
            locked = sum(int(row[1]) for row in rows if not _spendable(row[2], row[3], now))
            spendable = ((row[0], int(row[1])) for row in rows if _spendable(row[2], row[3], now))
        else:
            locked = int(self.raw.execute(_EXPIRED, (self.token, user_id, now)).fetchone()[0])
            locked += int(self.raw.execute(_PENDING, (self.token, user_id, now, now)).fetchone()[0])
            spendable = self._in_spend_order(user_id, now)
        if before - locked < covered:
            return None
        moves: list[tuple[str, int]] = []
        left = amount
        with closing(spendable):  # its statements end here, before the lots are written
            for lot_id, remaining in spendable:
                if not left:
                    break
                taken = min(remaining, left)
                moves.append((lot_id, taken))
                left -= taken
        self.apply(moves)
        return tuple(moves)

    def _in_spend_order(self, user_id: str, now: str) -> Generator[tuple[str, int]]:
        """The account's spendable lots in spend order, read as far as the caller goes."""
        reads = ((_EXPIRING_IN_ORDER, (self.token, user_id, now)), (_LASTING_IN_ORDER, (self.token, user_id)))
        for statement, params in reads:  # the second only once the caller has gone through the first
            for lot_id, remaining, available_at in self.raw.execute(statement, params):
                if available_at is None or available_at <= now:
                    yield lot_id, int(remaining)

    def apply(self, moves: Sequence[tuple[str, int]]) -> None:
        """Apply moves as a transaction records them: each lot's remaining less ``units`` (a negative move gives
        back, to an expired lot too: the next sweep takes it)."""
        if moves:
            self.raw.executemany(_MOVE, [(units, self.token, lot_id) for lot_id, units in moves])

    def create(self, lot_id: str, user_id: str, amount: int, expires_at: str | None, available_at: str | None,
               category: str | None, now: str) -> None:  # fmt: skip
        self.raw.execute(
            _INSERT_LOT, (self.token, lot_id, user_id, amount, amount, expires_at, available_at, category, now)
        )

    def expirable(self, lot_id: str, owner: str, now: str) -> int:
        """What is left of ``owner``'s lot ``lot_id`` if it has expired at ``now`` (0: nothing to sweep: no such
        lot of the owner's, nothing left, or not expired)."""
        row = self.raw.execute(
            "SELECT remaining FROM tb_lots WHERE token = ? AND id = ? AND user_id = ? AND remaining > 0 "
            "AND expires_at <= ?", (self.token, lot_id, owner, now),
        ).fetchone()  # fmt: skip
        return 0 if row is None else int(row[0])

    def sweep(self, lot_id: str) -> None:
        self.raw.execute("UPDATE tb_lots SET remaining = 0 WHERE token = ? AND id = ?", (self.token, lot_id))


def _spendable(available_at: str | None, expires_at: str | None, now: str) -> bool:
    return (available_at is None or available_at <= now) and (expires_at is None or expires_at > now)


def _spend_order(row: tuple[Any, ...]) -> tuple[bool, str, str]:
    """Soonest expiry first, no expiry last, then by id (byte order, as Python compares strings)."""
    return row[3] is None, row[3] or "", row[0]


def released(taken: LotMoves, amount: int) -> LotMoves:
    """What releasing ``amount`` of a hold gives back to the lots it ``taken``: from the last lot it took, each
    up to what the hold took from it (the rest goes back plain); negative moves."""
    moves: list[tuple[str, int]] = []
    left = amount
    for lot_id, units in reversed(taken):
        if not left:
            break
        given = min(units, left)
        moves.append((lot_id, -given))
        left -= given
    return tuple(moves)
