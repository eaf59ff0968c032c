"""Credit lots in SQLite's writer: what a debit takes from the debited account's lots, what a release gives back,
a grant's new lot and an expiry's sweep (the rules of docs/lots.md, as PostgreSQL's 0013_lots.sql applies them).

An account's lots are read only when its row says ``has_lots``: the debit's own UPDATE checks the locked part
(pending or expired lots) in its WHERE, behind ``NOT has_lots OR``, so an account without lots reads no lot row.
Times are SQLite's stored text (``sqlite_time``), which orders as the moments do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tokenbank.storage.base import LotMoves

_LOCKED = (
    "SELECT coalesce(sum(remaining), 0) FROM tb_lots WHERE token = ?3 AND user_id = ?4 AND remaining > 0 "
    "AND (available_at > ?6 OR expires_at <= ?6)"
)
"""What the account's lots hold locked at ``now`` (?6): not yet available, or expired and not yet swept."""

DEBIT = (
    "UPDATE tb_accounts SET balance = balance - ?1, held = held + ?2 "
    f"WHERE token = ?3 AND user_id = ?4 AND balance >= ?5 AND (NOT has_lots OR balance - ({_LOCKED}) >= ?5) "
    "RETURNING balance, has_lots"
)
"""A debit of ?1 (?2 of it moved to held) refused unless the balance less the locked part covers ?5 (the amount
less the account's overdraft); parameters ``(amount, to_held, token, user_id, covered, now)``."""

CREDIT_OWNER = (
    "INSERT INTO tb_accounts (token, user_id, balance, held, has_lots) VALUES (?, ?, ?, 0, 1) "
    "ON CONFLICT (token, user_id) DO UPDATE SET balance = balance + excluded.balance, has_lots = 1 "
    "RETURNING balance"
)
"""A grant's credit of its lot's owner, whose row then says it has lots."""

_SPENDABLE = (
    "SELECT id, remaining FROM tb_lots WHERE token = ? AND user_id = ? AND remaining > 0 "
    "AND (available_at IS NULL OR available_at <= ?) AND (expires_at IS NULL OR expires_at > ?) "
    "ORDER BY expires_at IS NULL, expires_at, id"
)
"""The account's spendable lots in spend order: soonest expiry first, no expiry last, then by id (byte order:
SQLite's default BINARY collation)."""

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

    def take(self, user_id: str, amount: int, now: str) -> LotMoves:
        """Take up to ``amount`` from the account's spendable lots in spend order (the debit itself was checked
        and written); the moves, positive."""
        moves: list[tuple[str, int]] = []
        left = amount
        lots = self.raw.execute(_SPENDABLE, (self.token, user_id, now, now))
        try:
            for lot_id, remaining in lots:
                taken = min(int(remaining), left)
                moves.append((lot_id, taken))
                left -= taken
                if not left:
                    break
        finally:
            lots.close()
        self.apply(moves)
        return tuple(moves)

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
