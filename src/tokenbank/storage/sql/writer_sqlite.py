"""The SQLite write path: the same op semantics as ``pg_apply.sql``, in Python, inside one transaction.

SQLite has one writer at a time (``BEGIN IMMEDIATE`` plus an in-process lock), so no row locking is
needed; the behaviour suite keeps this file and the PostgreSQL function in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from tokenbank.amounts import MAX_BASE_UNITS
from tokenbank.ids import new_id
from tokenbank.storage.base import HoldRecord, OpKind, OpResult, TxRecord, WriteOp
from tokenbank.storage.sql import records
from tokenbank.storage.sql.schema import accounts, audit, holds, tokens, transactions
from tokenbank.storage.status import Status


class _Abort(Exception):
    """Raised inside an atomic batch to roll the transaction back."""

    def __init__(self, index: int, result: OpResult) -> None:
        self.index = index
        self.result = result


async def apply_ops(conn: AsyncConnection, token: str, ops: Sequence[WriteOp], atomic: bool) -> list[OpResult]:
    """Apply ``ops`` in order on an open write transaction. Atomic failures raise :class:`_Abort`."""
    if await conn.scalar(sa.select(tokens.c.symbol).where(tokens.c.symbol == token)) is None:
        return [OpResult(Status.TOKEN_NOT_INITIALIZED) for _ in ops]
    writer = _Writer(conn, token)
    results = []
    for index, op in enumerate(ops):
        result = await writer.apply_one(op)
        if atomic and not result.status.ok:
            raise _Abort(index, result)
        results.append(result)
    return results


def aborted_results(count: int, abort: _Abort) -> list[OpResult]:
    return [abort.result if i == abort.index else OpResult(Status.BATCH_ABORTED) for i in range(count)]


class _Writer:
    def __init__(self, conn: AsyncConnection, token: str) -> None:
        self.conn = conn
        self.token = token

    async def apply_one(self, op: WriteOp) -> OpResult:
        if op.idempotency_key is not None:
            replay = await self._replay(op)
            if replay is not None:
                return replay
        if op.timestamp is not None and await self.conn.scalar(
            sa.select(transactions.c.seq).where(transactions.c.id == op.tx_id)
        ):
            return OpResult(Status.DUPLICATE_TRANSACTION)
        now = op.timestamp or datetime.now(UTC)
        handler = {
            OpKind.TRANSFER: self._transfer,
            OpKind.MINT: self._mint,
            OpKind.BURN: self._burn,
            OpKind.HOLD: self._hold,
            OpKind.CAPTURE: self._settle,
            OpKind.VOID: self._settle,
            OpKind.REVERSE: self._reverse,
        }[op.kind]
        result = await handler(op, now)
        if result.status is Status.OK and op.audit_action:
            await self._audit(op.audit_action, result.transactions[0], now)
        return result

    async def _replay(self, op: WriteOp) -> OpResult | None:
        row = (
            await self.conn.execute(
                sa.select(transactions).where(
                    transactions.c.token == self.token, transactions.c.idempotency_key == op.idempotency_key
                )
            )
        ).first()
        if row is None:
            return None
        if row.request_hash != op.fingerprint:
            return OpResult(Status.IDEMPOTENCY_CONFLICT)
        hold = await self._get_hold(row.hold_id) if row.hold_id else None
        return OpResult(Status.REPLAYED, (records.tx_from_row(row),), hold)

    async def _debit(self, user_id: str, amount: int, *, to_held: bool = False) -> int | None:
        values: dict[str, Any] = {"balance": accounts.c.balance - amount}
        if to_held:
            values["held"] = accounts.c.held + amount
        balance = await self.conn.scalar(
            accounts.update()
            .where(accounts.c.token == self.token, accounts.c.user_id == user_id, accounts.c.balance >= amount)
            .values(**values)
            .returning(accounts.c.balance)
        )
        return None if balance is None else int(balance)

    async def _credit(self, user_id: str, amount: int, *, release_held: int = 0) -> int:
        insert = sqlite_insert(accounts).values(token=self.token, user_id=user_id, balance=amount, held=0)
        stmt = insert.on_conflict_do_update(
            index_elements=[accounts.c.token, accounts.c.user_id],
            set_={"balance": accounts.c.balance + amount, "held": accounts.c.held - release_held},
        ).returning(accounts.c.balance)
        return int(await self.conn.scalar(stmt) or 0)

    async def _balance(self, user_id: str) -> int:
        value = await self.conn.scalar(
            sa.select(accounts.c.balance).where(accounts.c.token == self.token, accounts.c.user_id == user_id)
        )
        return int(value or 0)

    async def _insert_tx(self, op: WriteOp, now: datetime, *, keyed: bool = True, **fields: Any) -> TxRecord:
        values = {
            "id": op.tx_id,
            "token": self.token,
            "created_at": now,
            "metadata": op.metadata,
            "idempotency_key": op.idempotency_key if keyed else None,
            "request_hash": op.fingerprint if keyed else None,
            "reason": op.reason,
            **fields,
        }
        row = (await self.conn.execute(transactions.insert().values(**values).returning(transactions))).one()
        return records.tx_from_row(row)

    async def _transfer(self, op: WriteOp, now: datetime) -> OpResult:
        assert op.from_user_id and op.to_user_id and op.amount
        from_balance = await self._debit(op.from_user_id, op.amount)
        if from_balance is None:
            return OpResult(Status.INSUFFICIENT_BALANCE)
        to_balance = await self._credit(op.to_user_id, op.amount)
        tx = await self._insert_tx(
            op, now, type="transfer", from_user_id=op.from_user_id, to_user_id=op.to_user_id, amount=op.amount,
            from_balance_after=from_balance, to_balance_after=to_balance,
        )  # fmt: skip
        return OpResult(Status.OK, (tx,))

    async def _mint(self, op: WriteOp, now: datetime) -> OpResult:
        assert op.to_user_id and op.amount
        token = (await self.conn.execute(sa.select(tokens).where(tokens.c.symbol == self.token))).one()
        cap = MAX_BASE_UNITS if token.max_supply is None else min(token.max_supply, MAX_BASE_UNITS)
        if token.total_supply + op.amount > cap:
            return OpResult(Status.SUPPLY_CAP_EXCEEDED)
        await self.conn.execute(
            tokens.update().where(tokens.c.symbol == self.token).values(total_supply=tokens.c.total_supply + op.amount)
        )
        to_balance = await self._credit(op.to_user_id, op.amount)
        tx = await self._insert_tx(
            op, now, type="mint", to_user_id=op.to_user_id, amount=op.amount, to_balance_after=to_balance
        )
        return OpResult(Status.OK, (tx,))

    async def _burn(self, op: WriteOp, now: datetime) -> OpResult:
        assert op.from_user_id and op.amount
        from_balance = await self._debit(op.from_user_id, op.amount)
        if from_balance is None:
            return OpResult(Status.INSUFFICIENT_BALANCE)
        await self.conn.execute(
            tokens.update().where(tokens.c.symbol == self.token).values(total_supply=tokens.c.total_supply - op.amount)
        )
        tx = await self._insert_tx(
            op, now, type="burn", from_user_id=op.from_user_id, amount=op.amount, from_balance_after=from_balance
        )
        return OpResult(Status.OK, (tx,))

    async def _hold(self, op: WriteOp, now: datetime) -> OpResult:
        assert op.from_user_id and op.to_user_id and op.amount and op.hold_id and op.expires_at
        from_balance = await self._debit(op.from_user_id, op.amount, to_held=True)
        if from_balance is None:
            return OpResult(Status.INSUFFICIENT_BALANCE)
        await self.conn.execute(
            holds.insert().values(
                id=op.hold_id, token=self.token, from_user_id=op.from_user_id, to_user_id=op.to_user_id,
                amount=op.amount, captured_amount=0, status="pending", expires_at=op.expires_at, created_at=now,
                metadata=op.metadata,
            )
        )  # fmt: skip
        tx = await self._insert_tx(
            op, now, type="hold", from_user_id=op.from_user_id, to_user_id=op.to_user_id, amount=op.amount,
            from_balance_after=from_balance, to_balance_after=await self._balance(op.to_user_id), hold_id=op.hold_id,
        )  # fmt: skip
        return OpResult(Status.OK, (tx,), await self._get_hold(op.hold_id))

    async def _settle(self, op: WriteOp, now: datetime) -> OpResult:
        """Capture (all or part, releasing the rest) or void a pending hold."""
        assert op.hold_id
        hold = await self._get_hold(op.hold_id)
        if hold is None:
            return OpResult(Status.HOLD_NOT_FOUND)
        if hold.status != "pending":
            return OpResult(Status.HOLD_NOT_PENDING)
        captured = 0
        if op.kind is OpKind.CAPTURE:
            if hold.expires_at <= now:
                return OpResult(Status.HOLD_EXPIRED)
            captured = hold.amount if op.amount is None else op.amount
            if captured > hold.amount:
                return OpResult(Status.CAPTURE_EXCEEDS_HOLD)
        rest = hold.amount - captured
        from_balance = await self._credit(hold.from_user_id, rest, release_held=hold.amount)
        to_balance = await self._credit(hold.to_user_id, captured)
        await self.conn.execute(
            holds.update()
            .where(holds.c.id == hold.id)
            .values(status="captured" if op.kind is OpKind.CAPTURE else "voided", captured_amount=captured)
        )
        sides: dict[str, Any] = {
            "from_user_id": hold.from_user_id, "to_user_id": hold.to_user_id, "from_balance_after": from_balance,
            "to_balance_after": to_balance, "hold_id": hold.id,
        }  # fmt: skip
        written: list[TxRecord] = []
        if captured:
            written.append(await self._insert_tx(op, now, type="capture", amount=captured, **sides))
        if rest:
            release = WriteOp(
                kind=OpKind.VOID, tx_id=new_id() if captured else op.tx_id, metadata=op.metadata,
                reason=op.reason or ("released by partial capture" if captured else None),
                idempotency_key=op.idempotency_key, fingerprint=op.fingerprint,
            )  # fmt: skip
            written.append(await self._insert_tx(release, now, keyed=not captured, type="void", amount=rest, **sides))
        return OpResult(Status.OK, tuple(written), await self._get_hold(hold.id))

    async def _reverse(self, op: WriteOp, now: datetime) -> OpResult:
        original = (
            await self.conn.execute(
                sa.select(transactions).where(transactions.c.id == op.reverses_id, transactions.c.token == self.token)
            )
        ).first()
        if original is None:
            return OpResult(Status.TRANSACTION_NOT_FOUND)
        if original.type != "transfer":
            return OpResult(Status.NOT_REVERSIBLE)
        if await self.conn.scalar(
            sa.select(transactions.c.seq).where(
                transactions.c.token == self.token, transactions.c.reverses_id == original.id
            )
        ):
            return OpResult(Status.ALREADY_REVERSED)
        from_balance = await self._debit(original.to_user_id, original.amount)
        if from_balance is None:
            return OpResult(Status.INSUFFICIENT_BALANCE)
        to_balance = await self._credit(original.from_user_id, original.amount)
        tx = await self._insert_tx(
            op, now, type="reversal", from_user_id=original.to_user_id, to_user_id=original.from_user_id,
            amount=original.amount, from_balance_after=from_balance, to_balance_after=to_balance,
            reverses_id=original.id,
        )  # fmt: skip
        return OpResult(Status.OK, (tx,))

    async def _get_hold(self, hold_id: str) -> HoldRecord | None:
        row = (
            await self.conn.execute(sa.select(holds).where(holds.c.id == hold_id, holds.c.token == self.token))
        ).first()
        return records.hold_from_row(row) if row else None

    async def _audit(self, action: str, tx: TxRecord, now: datetime) -> None:
        await self.conn.execute(
            audit.insert().values(token=self.token, action=action, details=records.audit_details(tx), created_at=now)
        )
