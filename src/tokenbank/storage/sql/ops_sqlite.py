"""Each op kind of SQLite's write path, with the same semantics and order of checks as PostgreSQL's
``tb_apply_one``: an idempotency replay or a resend first, then the accounts' controls, then the op itself.

Statements are plain SQL text, as in the PostgreSQL functions of the migrations: building Core expressions cost
~10x more than SQLite itself spends on them on this hot path. The behaviour suite keeps both writers in step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from tokenbank.ids import new_id
from tokenbank.status import Status
from tokenbank.storage.base import LotMoves, OpKind, OpResult, TxRecord, WriteOp
from tokenbank.storage.sql.lots_sqlite import CREDIT_OWNER, released
from tokenbank.storage.sql.times_sqlite import sqlite_time, sqlite_time_or_none
from tokenbank.storage.sql.write_steps_sqlite import ChainCursor, WriteSteps
from tokenbank.storage.wire import SQL, lot_moves, lot_moves_json


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


class OpApplier(WriteSteps):
    """Applies one op at a time on the open write transaction, each kind by its own handler."""

    def __init__(self, conn: Connection, token: str, cursor: ChainCursor) -> None:
        super().__init__(conn, token, cursor)
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
        lot = {"expires_at": sqlite_time_or_none(op.expires_at), "available_at": sqlite_time_or_none(op.available_at),
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
