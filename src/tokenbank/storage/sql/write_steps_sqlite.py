"""The steps every op of SQLite's write path is built from, inside one write transaction on one token: debit and
credit an account, write a journal row with its chain hash, and look up holds, reversals and the supply.

SQLite has one writer at a time (``BEGIN IMMEDIATE`` on the store's single thread), so no row locking is needed,
and this writer's seq order is the journal's write order. :class:`~tokenbank.storage.sql.ops_sqlite.OpApplier`
builds each op kind from these steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from tokenbank.amounts import MAX_BASE_UNITS
from tokenbank.chain.encoding import GENESIS, chain_hash
from tokenbank.storage.base import HoldRecord, LotMoves, TxRecord, WriteOp
from tokenbank.storage.sql.controls import SqliteControls, overdraft_total_sqlite
from tokenbank.storage.sql.lots_sqlite import DEBIT, UNDO_DEBIT, SqliteLots
from tokenbank.storage.sql.times_sqlite import read_sqlite_time, read_sqlite_time_or_none
from tokenbank.storage.wire import SQL, lot_moves_json

_TX_COLUMNS = (
    "seq, id, token, type, from_user_id, to_user_id, amount, from_balance_after, to_balance_after, created_at, "
    "metadata, idempotency_key, request_hash, reason, hold_id, reverses_id, hash, lots, expires_at, available_at, "
    "category"
)
_INSERT_TX = f"INSERT INTO tb_transactions ({_TX_COLUMNS}) VALUES ({', '.join('?' * 21)})"
_RECENT_HEAD = (
    "SELECT seq, hash FROM (SELECT seq, hash, token FROM tb_transactions ORDER BY seq DESC LIMIT 64) "
    "WHERE token = ? ORDER BY seq DESC LIMIT 1"
)
"""The token's last journal row if it is among the 64 newest rows of the database."""
_CREDIT = (
    "INSERT INTO tb_accounts (token, user_id, balance, held) VALUES (?, ?, ?, 0) "
    "ON CONFLICT (token, user_id) DO UPDATE SET balance = balance + excluded.balance, held = held - ? "
    "RETURNING balance"
)


@dataclass
class ChainCursor:
    """The token's chain head as this writer last wrote it: still the head if the journal's last row is that row
    (checked at the start of each write transaction in the statement that reads the seq counter); after any
    write from elsewhere (another process, another token's writer) the token's last row is looked up."""

    seq: int = 0
    hash: str | None = None


class WriteSteps:
    """One write transaction's row-level steps for ``token``, continuing the chain from ``cursor``."""

    def __init__(self, conn: Connection, token: str, cursor: ChainCursor) -> None:
        self.conn = conn
        self.token = token
        # The chain continues from the token's head; one writer at a time, so seq order is write order.
        self._cursor = cursor
        self._head: tuple[int, str] | None = None
        self._head_moved = False
        self._next_seq = 0
        self.controls = SqliteControls(conn, token)
        self.lots = SqliteLots(self.controls.raw, token)

    def _one(self, sql: str, *params: Any) -> Any:
        return self.conn.exec_driver_sql(sql, params).first()

    def _debit(self, user_id: str, amount: int, now: str, *, to_held: bool = False) -> tuple[int, LotMoves] | None:
        """The balance after and what the debit took from the account's lots (spend order), or None when the
        balance less what its lots hold locked does not cover ``amount``: down to zero, or to minus the account's
        overdraft (which the op's refusal check, ``OpApplier._refusal``, read with its controls)."""
        floor = self.controls.floor
        covered = amount - floor[1] if floor is not None and floor[0] == user_id else amount
        to_held_units = amount if to_held else 0
        row = self._one(DEBIT, amount, to_held_units, self.token, user_id, covered)
        if row is None:
            return None
        balance = int(row[0])
        if not row[1]:
            return balance, ()
        taken = self.lots.take(user_id, amount, covered, balance + amount, now)
        if taken is None:  # what the lots lock leaves too little: the debit is undone
            self.conn.exec_driver_sql(UNDO_DEBIT, (amount, to_held_units, self.token, user_id))
            return None
        return balance, taken

    def _credit(self, user_id: str, amount: int, *, release_held: int = 0) -> int:
        return int(self._one(_CREDIT, self.token, user_id, amount, release_held)[0])

    def _balance(self, user_id: str) -> int:
        row = self._one("SELECT balance FROM tb_accounts WHERE token = ? AND user_id = ?", self.token, user_id)
        return 0 if row is None else int(row[0])

    def _chain_head(self) -> tuple[int, str]:
        """(seq, hash) of the token's last journal row, and the next free seq, read once per write transaction
        (it holds the database's write lock: only this writer adds rows until it ends)."""
        if self._head is None:
            top, cached = self._one(
                "SELECT coalesce(max(seq), 0), (SELECT hash FROM tb_transactions WHERE seq = ? AND token = ?) "
                "FROM tb_transactions", self._cursor.seq, self.token,
            )  # fmt: skip
            self._next_seq = int(top) + 1
            if top == self._cursor.seq and cached is not None and cached == self._cursor.hash:
                self._head = (self._cursor.seq, cached)  # nothing was written since this writer's last row
            else:  # this writer's first write, or rows written since by another: the token's last row
                # First among the journal's newest rows (seq is the rowid: a short walk back from its end), where
                # it is when tokens of one database take turns (an exchange writes two); only then through the
                # token's rows, which SQLite reads and sorts whole.
                row = self._one(_RECENT_HEAD, self.token) or self._one(
                    "SELECT seq, hash FROM tb_transactions WHERE token = ? ORDER BY seq DESC LIMIT 1", self.token
                )
                # No row, or rows older than the chain (no hash): the chain starts here.
                self._head = (0, GENESIS) if row is None or row[1] is None else (int(row[0]), row[1])
        return self._head

    def save_chain_head(self) -> None:
        """Remember the head for the next write transaction (only once this one's ops all ran)."""
        if self._head_moved and self._head is not None:
            self._cursor.seq, self._cursor.hash = self._head

    def _insert_tx(self, op: WriteOp, now: str, kind: str, amount: int, *, keyed: bool = True, **f: Any) -> TxRecord:
        # The seq is taken here rather than by SQLite so the row's chain hash is written with it.
        prev = self._chain_head()[1]
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        lot = f.get("lot") or {}  # a grant's lot: expires_at, available_at, category (stored text)
        tx = TxRecord(
            seq=seq, id=op.tx_id, type=kind, from_user_id=f.get("from_user_id"), to_user_id=f.get("to_user_id"),
            amount=amount, timestamp=read_sqlite_time(now), metadata=op.metadata,
            idempotency_key=op.idempotency_key if keyed else None, reason=op.reason, hold_id=f.get("hold_id"),
            reverses_id=f.get("reverses_id"), from_balance_after=f.get("from_balance_after"),
            to_balance_after=f.get("to_balance_after"), lots=f.get("lots", ()),
            expires_at=read_sqlite_time_or_none(lot.get("expires_at")),
            available_at=read_sqlite_time_or_none(lot.get("available_at")), category=lot.get("category"),
        )  # fmt: skip
        digest = chain_hash(prev, self.token, tx)
        self.conn.exec_driver_sql(
            _INSERT_TX,
            (seq, tx.id, self.token, kind, tx.from_user_id, tx.to_user_id, amount, tx.from_balance_after,
             tx.to_balance_after, now, op.metadata, tx.idempotency_key, op.fingerprint if keyed else None, op.reason,
             tx.hold_id, tx.reverses_id, digest, lot_moves_json(tx.lots), lot.get("expires_at"),
             lot.get("available_at"), tx.category),
        )  # fmt: skip
        self._head, self._head_moved = (seq, digest), True
        return tx

    def _supply_allows(self, amount: int) -> bool:
        """Whether minting ``amount`` keeps the total supply within the max supply (and the room every overdraft
        limit keeps: controls.overdraft_room)."""
        total, max_supply = self._one("SELECT total_supply, max_supply FROM tb_tokens WHERE symbol = ?", self.token)
        cap = MAX_BASE_UNITS if max_supply is None else min(max_supply, MAX_BASE_UNITS)
        if self.controls.active():
            cap = min(cap, MAX_BASE_UNITS - overdraft_total_sqlite(self.controls.raw, self.token))
        return bool(total + amount <= cap)

    def _adjust_supply(self, delta: int) -> None:
        self.conn.exec_driver_sql(
            "UPDATE tb_tokens SET total_supply = total_supply + ? WHERE symbol = ?", (delta, self.token)
        )

    def _reversed(self, tx_id: str) -> bool:
        return (
            self._one("SELECT 1 FROM tb_transactions WHERE token = ? AND reverses_id = ?", self.token, tx_id)
            is not None
        )

    def _hold_row(self, hold_id: str) -> Any:
        return self._one("SELECT * FROM tb_holds WHERE id = ? AND token = ?", hold_id, self.token)

    def _get_hold(self, hold_id: str) -> HoldRecord | None:
        row = self._hold_row(hold_id)
        return SQL.hold(row) if row else None
