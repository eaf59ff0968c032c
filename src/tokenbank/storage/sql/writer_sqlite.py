"""The SQLite write path: the same op semantics as PostgreSQL's ``tb_apply``, in Python, inside one transaction.

:func:`apply_ops` runs a batch through :class:`~tokenbank.storage.sql.ops_sqlite.OpApplier` (each op kind), built
on :class:`~tokenbank.storage.sql.write_steps_sqlite.WriteSteps` (debits, credits, journal rows, the chain head);
:class:`SqliteWriter` runs it on the store's single SQLite thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import URL

from tokenbank.status import Status
from tokenbank.storage.base import OpResult, WriteOp
from tokenbank.storage.sql.connection import SqliteThread
from tokenbank.storage.sql.ops_sqlite import OpApplier
from tokenbank.storage.sql.write_steps_sqlite import ChainCursor
from tokenbank.storage.sql.writer import SqlWriter

T = TypeVar("T")


class AtomicAbort(Exception):
    """Raised inside an atomic batch to roll the transaction back."""

    def __init__(self, index: int, result: OpResult) -> None:
        self.index = index
        self.result = result


def apply_ops(
    conn: Connection, token: str, ops: Sequence[WriteOp], atomic: bool, cursor: ChainCursor | None = None
) -> list[OpResult]:
    """Apply ``ops`` in order on an open write transaction. Atomic failures raise :class:`AtomicAbort`."""
    if conn.exec_driver_sql("SELECT 1 FROM tb_tokens WHERE symbol = ?", (token,)).first() is None:
        return [OpResult(Status.TOKEN_NOT_INITIALIZED) for _ in ops]
    writer = OpApplier(conn, token, cursor or ChainCursor())
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
