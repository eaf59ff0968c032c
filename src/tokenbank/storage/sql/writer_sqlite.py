"""The SQLite write path: the same op semantics as PostgreSQL's ``tb_apply``, in Python, inside one transaction.

SQLite has one writer at a time (``BEGIN IMMEDIATE`` on the store's single thread), so no row locking
is needed. Statements are plain SQL text, as in the PostgreSQL functions of the migrations: building Core
expressions cost ~10x more than SQLite itself spends on them on this hot path.
The behaviour suite keeps both writers in step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import URL

from tokenbank.amounts import MAX_BASE_UNITS
from tokenbank.chain.encoding import GENESIS, chain_hash
from tokenbank.ids import new_id
from tokenbank.status import Status
from tokenbank.storage.base import HoldRecord, LotMoves, OpKind, OpResult, TxRecord, WriteOp
from tokenbank.storage.sql.connection import SqliteThread
from tokenbank.storage.sql.controls import SqliteControls, overdraft_total_sqlite
from tokenbank.storage.sql.lots_sqlite import CREDIT_OWNER, DEBIT, UNDO_DEBIT, SqliteLots, released
from tokenbank.storage.sql.writer import SqlWriter
from tokenbank.storage.wire import SQL, lot_moves, lot_moves_json

T = TypeVar("T")
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


def _audit_details(tx: TxRecord) -> str:
    """The audit entry written with a mint, burn, reversal or import (the keys tb_apply writes)."""
    return json.dumps(
        {
            "transaction_id": tx.id,
            "type": tx.type,
            "from_user_id": tx.from_user_id,
            "to_user_id": tx.to_user_id,
            "amount": str(tx.amount),
            "reason": tx.reason,
        },
        sort_keys=True,
    )


def sqlite_time(value: datetime) -> str:
    """The text form SQLAlchemy's SQLite DateTime uses, so Core reads and range filters see the same values."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _opt_time(value: datetime | None) -> str | None:
    return None if value is None else sqlite_time(value)


def _read_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _read_opt_time(text: str | None) -> datetime | None:
    return None if text is None else _read_time(text)


class AtomicAbort(Exception):
    """Raised inside an atomic batch to roll the transaction back."""

    def __init__(self, index: int, result: OpResult) -> None:
        self.index = index
        self.result = result


@dataclass
class ChainCursor:
    """The token's chain head as this writer last wrote it: still the head if the journal's last row is that row
    (checked at the start of each write transaction in the statement that reads the seq counter); after any
    write from elsewhere (another process, another token's writer) the token's last row is looked up."""

    seq: int = 0
    hash: str | None = None


def apply_ops(
    conn: Connection, token: str, ops: Sequence[WriteOp], atomic: bool, cursor: ChainCursor | None = None
) -> list[OpResult]:
    """Apply ``ops`` in order on an open write transaction. Atomic failures raise :class:`AtomicAbort`."""
    if conn.exec_driver_sql("SELECT 1 FROM tb_tokens WHERE symbol = ?", (token,)).first() is None:
        return [OpResult(Status.TOKEN_NOT_INITIALIZED) for _ in ops]
    writer = _Writer(conn, token, cursor or ChainCursor())
    results = []
    for index, op in enumerate(ops):
        result = writer.apply_one(op)
        if atomic and not result.status.ok:
            raise AtomicAbort(index, result)
        results.append(result)
    writer.controls.flush()
    writer.save_chain_head()
    return results


def aborted_results(count: int, abort: AtomicAbort) -> list[OpResult]:
    return [abort.result if i == abort.index else OpResult(Status.BATCH_ABORTED) for i in range(count)]


class _Writer:
    def __init__(self, conn: Connection, token: str, cursor: ChainCursor) -> None:
        self.conn = conn
        self.token = token
        self.handlers: dict[OpKind, Callable[[WriteOp, str], OpResult]] = {
            OpKind.TRANSFER: self._transfer,
            OpKind.MINT: self._mint,
            OpKind.BURN: self._burn,
            OpKind.HOLD: self._hold,
            OpKind.CAPTURE: self._settle,
            OpKind.VOID: self._settle,
            OpKind.REVERSE: self._reverse,
            OpKind.GRANT: self._grant,
            OpKind.EXPIRE: self._expire,
        }
        # The chain continues from the token's head; one writer at a time, so seq order is write order.
        self._cursor = cursor
        self._head: tuple[int, str] | None = None
        self._head_moved = False
        self._next_seq = 0
        self.controls = SqliteControls(conn, token)
        self.lots = SqliteLots(self.controls.raw, token)

    def _one(self, sql: str, *params: Any) -> Any:
        return self.conn.exec_driver_sql(sql, params).first()

    def apply_one(self, op: WriteOp) -> OpResult:
        if op.idempotency_key is not None:
            replay = self._replay(op)
            if replay is not None:
                return replay
        # Looked for on the raw connection first: a result of every journal column costs SQLAlchemy more than
        # SQLite spends on the lookup, and almost every op is new.
        if self.controls.raw.execute("SELECT 1 FROM tb_transactions WHERE id = ?", (op.tx_id,)).fetchone():
            existing = self._one("SELECT * FROM tb_transactions WHERE id = ?", op.tx_id)
            if op.timestamp is not None:  # an import whose id exists already
                return OpResult(Status.DUPLICATE_TRANSACTION)
            # A resend of an op this store already applied: replay it (as tb_apply_one does on PostgreSQL).
            hold = self._get_hold(existing.hold_id) if existing.hold_id else None
            return OpResult(Status.REPLAYED, (SQL.tx(existing),), hold)
        now = sqlite_time(op.timestamp or datetime.now(UTC))
        if self.controls.active():
            refused = self._refusal(op, now)
            if refused is not None:
                return OpResult(refused)
        result = self.handlers[op.kind](op, now)
        if result.status is Status.OK and self.controls.active():
            self.controls.record_spend(op, now)
        if result.status is Status.OK and op.audit_action and result.transactions:
            self.conn.exec_driver_sql(
                "INSERT INTO tb_audit (token, action, details, created_at) VALUES (?, ?, ?, ?)",
                (self.token, op.audit_action, _audit_details(result.transactions[0]), now),
            )
        return result

    def _refusal(self, op: WriteOp, now: str) -> Status | None:
        """What the accounts' controls say about ``op``: the accounts it debits and credits, then the checks."""
        self.controls.floor = None
        debit, credit, amount = op.from_user_id, op.to_user_id, op.amount or 0
        if op.kind is OpKind.MINT:
            debit = None
        elif op.kind in (OpKind.BURN, OpKind.HOLD):
            credit = None
        elif op.kind is OpKind.CAPTURE:
            hold = self._get_hold(op.hold_id) if op.hold_id else None
            if hold is None or hold.status != "pending":
                return None  # the capture itself reports it
            debit, credit, amount = None, hold.to_user_id, hold.amount if op.amount is None else op.amount
        elif op.kind is OpKind.REVERSE:
            original = self._one("SELECT * FROM tb_transactions WHERE id = ? AND token = ?", op.reverses_id, self.token)
            if original is None or original.type != "transfer" or self._reversed(original.id):
                return None  # not reversible: the reversal itself reports why
            debit, credit, amount = original.to_user_id, original.from_user_id, int(original.amount)
        elif op.kind in (OpKind.VOID, OpKind.EXPIRE):
            return None  # releasing held funds to their owner, or sweeping an expired lot, is never refused
        return self.controls.refusal(op, debit, credit, amount, now)

    def _replay(self, op: WriteOp) -> OpResult | None:
        row = self._one("SELECT * FROM tb_transactions WHERE token = ? AND idempotency_key = ?", self.token,
                        op.idempotency_key)  # fmt: skip
        if row is None:
            return None
        if row.request_hash != op.fingerprint:
            return OpResult(Status.IDEMPOTENCY_CONFLICT)
        hold = self._get_hold(row.hold_id) if row.hold_id else None
        return OpResult(Status.REPLAYED, (SQL.tx(row),), hold)

    def _debit(self, user_id: str, amount: int, now: str, *, to_held: bool = False) -> tuple[int, LotMoves] | None:
        """The balance after and what the debit took from the account's lots (spend order), or None when the
        balance less what its lots hold locked does not cover ``amount``: down to zero, or to minus the account's
        overdraft (which :meth:`_refusal` read with its controls)."""
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
            amount=amount, timestamp=_read_time(now), metadata=op.metadata,
            idempotency_key=op.idempotency_key if keyed else None, reason=op.reason, hold_id=f.get("hold_id"),
            reverses_id=f.get("reverses_id"), from_balance_after=f.get("from_balance_after"),
            to_balance_after=f.get("to_balance_after"), lots=f.get("lots", ()),
            expires_at=_read_opt_time(lot.get("expires_at")), available_at=_read_opt_time(lot.get("available_at")),
            category=lot.get("category"),
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

    def _transfer(self, op: WriteOp, now: str) -> OpResult:
        assert op.from_user_id and op.to_user_id and op.amount
        debited = self._debit(op.from_user_id, op.amount, now)
        if debited is None:
            return OpResult(Status.INSUFFICIENT_BALANCE)
        to_balance = self._credit(op.to_user_id, op.amount)
        tx = self._insert_tx(
            op, now, "transfer", op.amount, from_user_id=op.from_user_id, to_user_id=op.to_user_id,
            from_balance_after=debited[0], to_balance_after=to_balance, lots=debited[1],
        )  # fmt: skip
        return OpResult(Status.OK, (tx,))

    def _mint(self, op: WriteOp, now: str) -> OpResult:
        assert op.to_user_id and op.amount
        if not self._supply_allows(op.amount):
            return OpResult(Status.SUPPLY_CAP_EXCEEDED)
        self._adjust_supply(op.amount)
        to_balance = self._credit(op.to_user_id, op.amount)
        tx = self._insert_tx(op, now, "mint", op.amount, to_user_id=op.to_user_id, to_balance_after=to_balance)
        return OpResult(Status.OK, (tx,))

    def _supply_allows(self, amount: int) -> bool:
        """Whether minting ``amount`` keeps the total supply within the max supply (and the room every overdraft
        limit keeps: controls.overdraft_room)."""
        total, max_supply = self._one("SELECT total_supply, max_supply FROM tb_tokens WHERE symbol = ?", self.token)
        cap = MAX_BASE_UNITS if max_supply is None else min(max_supply, MAX_BASE_UNITS)
        if self.controls.active():
            cap = min(cap, MAX_BASE_UNITS - overdraft_total_sqlite(self.controls.raw, self.token))
        return bool(total + amount <= cap)

    def _burn(self, op: WriteOp, now: str) -> OpResult:
        assert op.from_user_id and op.amount
        debited = self._debit(op.from_user_id, op.amount, now)
        if debited is None:
            return OpResult(Status.INSUFFICIENT_BALANCE)
        self._adjust_supply(-op.amount)
        tx = self._insert_tx(
            op, now, "burn", op.amount, from_user_id=op.from_user_id, from_balance_after=debited[0], lots=debited[1]
        )
        return OpResult(Status.OK, (tx,))

    def _grant(self, op: WriteOp, now: str) -> OpResult:
        """A new lot for ``to``: minted from supply, or funded by ``from`` (debited like a transfer's sender)."""
        assert op.to_user_id and op.amount
        from_balance: int | None = None
        taken: LotMoves = ()
        if op.from_user_id is None:
            if not self._supply_allows(op.amount):
                return OpResult(Status.SUPPLY_CAP_EXCEEDED)
            self._adjust_supply(op.amount)
        else:
            debited = self._debit(op.from_user_id, op.amount, now)
            if debited is None:
                return OpResult(Status.INSUFFICIENT_BALANCE)
            from_balance, taken = debited
        to_balance = int(self._one(CREDIT_OWNER, self.token, op.to_user_id, op.amount)[0])
        lot = {"expires_at": _opt_time(op.expires_at), "available_at": _opt_time(op.available_at),
               "category": op.category}  # fmt: skip
        self.lots.create(op.tx_id, op.to_user_id, op.amount, lot["expires_at"], lot["available_at"], op.category, now)
        tx = self._insert_tx(
            op, now, "grant", op.amount, from_user_id=op.from_user_id, to_user_id=op.to_user_id,
            from_balance_after=from_balance, to_balance_after=to_balance, lots=taken, lot=lot,
        )  # fmt: skip
        return OpResult(Status.OK, (tx,))

    def _expire(self, op: WriteOp, now: str) -> OpResult:
        """Move what is left of an expired lot to the breakage account (nothing to do: OK without a transaction)."""
        assert op.lot_id and op.from_user_id and op.to_user_id
        left = self.lots.expirable(op.lot_id, op.from_user_id, now)
        if not left:
            return OpResult(Status.OK)
        self.lots.sweep(op.lot_id)
        from_balance = int(
            self._one("UPDATE tb_accounts SET balance = balance - ? WHERE token = ? AND user_id = ? RETURNING balance",
                      left, self.token, op.from_user_id)[0]
        )  # fmt: skip
        to_balance = self._credit(op.to_user_id, left)
        tx = self._insert_tx(
            op, now, "expire", left, keyed=False, from_user_id=op.from_user_id, to_user_id=op.to_user_id,
            from_balance_after=from_balance, to_balance_after=to_balance, lots=((op.lot_id, left),),
        )  # fmt: skip
        return OpResult(Status.OK, (tx,))

    def _adjust_supply(self, delta: int) -> None:
        self.conn.exec_driver_sql(
            "UPDATE tb_tokens SET total_supply = total_supply + ? WHERE symbol = ?", (delta, self.token)
        )

    def _hold(self, op: WriteOp, now: str) -> OpResult:
        assert op.from_user_id and op.to_user_id and op.amount and op.hold_id and op.expires_at
        debited = self._debit(op.from_user_id, op.amount, now, to_held=True)
        if debited is None:
            return OpResult(Status.INSUFFICIENT_BALANCE)
        from_balance, taken = debited
        self.conn.exec_driver_sql(
            "INSERT INTO tb_holds (id, token, from_user_id, to_user_id, amount, captured_amount, status, expires_at,"
            " created_at, metadata, lots) VALUES (?, ?, ?, ?, ?, 0, 'pending', ?, ?, ?, ?)",
            (op.hold_id, self.token, op.from_user_id, op.to_user_id, op.amount, sqlite_time(op.expires_at), now,
             op.metadata, lot_moves_json(taken)),
        )  # fmt: skip
        tx = self._insert_tx(
            op, now, "hold", op.amount, from_user_id=op.from_user_id, to_user_id=op.to_user_id,
            from_balance_after=from_balance, to_balance_after=self._balance(op.to_user_id), hold_id=op.hold_id,
            lots=taken,
        )  # fmt: skip
        return OpResult(Status.OK, (tx,), self._get_hold(op.hold_id))

    def _settle(self, op: WriteOp, now: str) -> OpResult:
        """Capture (all or part, releasing the rest) or void a pending hold."""
        assert op.hold_id
        row = self._hold_row(op.hold_id)
        if row is None:
            return OpResult(Status.HOLD_NOT_FOUND)
        hold = SQL.hold(row)
        if hold.status != "pending":
            return OpResult(Status.HOLD_NOT_PENDING)
        captured = 0
        if op.kind is OpKind.CAPTURE:
            if sqlite_time(hold.expires_at) <= now:
                return OpResult(Status.HOLD_EXPIRED)
            captured = hold.amount if op.amount is None else op.amount
            if captured > hold.amount:
                return OpResult(Status.CAPTURE_EXCEEDS_HOLD)
        rest = hold.amount - captured
        given = released(lot_moves(row.lots), rest)  # a capture moves no lot: the release gives back
        self.lots.apply(given)
        from_balance = self._credit(hold.from_user_id, rest, release_held=hold.amount)
        to_balance = self._credit(hold.to_user_id, captured)
        self.conn.exec_driver_sql(
            "UPDATE tb_holds SET status = ?, captured_amount = ? WHERE id = ?",
            ("captured" if op.kind is OpKind.CAPTURE else "voided", captured, hold.id),
        )
        sides: dict[str, Any] = {
            "from_user_id": hold.from_user_id, "to_user_id": hold.to_user_id, "from_balance_after": from_balance,
            "to_balance_after": to_balance, "hold_id": hold.id,
        }  # fmt: skip
        written: list[TxRecord] = []
        if captured:
            written.append(self._insert_tx(op, now, "capture", captured, **sides))
        if rest:
            release = WriteOp(
                kind=OpKind.VOID, tx_id=new_id() if captured else op.tx_id, metadata=op.metadata,
                reason=op.reason or ("released by partial capture" if captured else None),
                idempotency_key=op.idempotency_key, fingerprint=op.fingerprint,
            )  # fmt: skip
            written.append(self._insert_tx(release, now, "void", rest, keyed=not captured, lots=given, **sides))
        return OpResult(Status.OK, tuple(written), self._get_hold(hold.id))

    def _reverse(self, op: WriteOp, now: str) -> OpResult:
        original = self._one("SELECT * FROM tb_transactions WHERE id = ? AND token = ?", op.reverses_id, self.token)
        if original is None:
            return OpResult(Status.TRANSACTION_NOT_FOUND)
        if original.type != "transfer":
            return OpResult(Status.NOT_REVERSIBLE)
        if self._reversed(original.id):
            return OpResult(Status.ALREADY_REVERSED)
        debited = self._debit(original.to_user_id, original.amount, now)
        if debited is None:
            return OpResult(Status.INSUFFICIENT_BALANCE)
        # The original sender's lots get back exactly what the transfer took from them.
        restored = tuple((lot_id, -units) for lot_id, units in lot_moves(original.lots))
        self.lots.apply(restored)
        to_balance = self._credit(original.from_user_id, original.amount)
        tx = self._insert_tx(
            op, now, "reversal", original.amount, from_user_id=original.to_user_id,
            to_user_id=original.from_user_id, from_balance_after=debited[0], to_balance_after=to_balance,
            reverses_id=original.id, lots=debited[1] + restored,
        )  # fmt: skip
        return OpResult(Status.OK, (tx,))

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


class SqliteWriter(SqlWriter):
    """SQLite: every transaction on the store's single thread, writes applied by :func:`apply_ops`."""

    in_flight = 1  # one writer: a second batch would only wait for the lock
    hashes_on_write = True  # one writer: seq order is write order

    def __init__(self, url: URL, token: str) -> None:
        self.token = token
        self._thread = SqliteThread(url)
        self._chain = ChainCursor()

    async def close(self) -> None:
        await self._thread.close()

    async def run(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        return await self._thread.run(fn, write=write)

    async def send(self, ops: Sequence[WriteOp], atomic: bool) -> list[OpResult]:
        try:
            return await self._thread.run(
                lambda conn: apply_ops(conn, self.token, ops, atomic, self._chain), write=True
            )
        except AtomicAbort as abort:  # the transaction was rolled back
            return aborted_results(len(ops), abort)

    def decode(self, raw: list[OpResult]) -> list[OpResult]:
        return raw

    async def apply_tokens(self, legs: Sequence[tuple[SqlWriter, WriteOp]]) -> list[OpResult]:
        def work(conn: Connection) -> list[OpResult]:
            results = []
            for index, (writer, op) in enumerate(legs):
                # A fresh chain cursor: each token's head is looked up, as after another writer's rows.
                try:
                    [result] = apply_ops(conn, writer.token, [op], True)
                except AtomicAbort as abort:
                    raise AtomicAbort(index, abort.result) from None
                if not result.status.ok:  # a token that does not exist answers without raising
                    raise AtomicAbort(index, result)
                results.append(result)
            return results

        try:
            return await self._thread.run(work, write=True)
        except AtomicAbort as abort:  # the transaction was rolled back
            return aborted_results(len(legs), abort)

    def apply_in(self, conn: Connection, ops: Sequence[WriteOp], atomic: bool) -> list[OpResult]:
        return apply_ops(conn, self.token, ops, atomic, self._chain)
