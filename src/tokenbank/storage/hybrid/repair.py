"""``reconcile(repair=True)``: make Redis agree with PostgreSQL, the store of record, with an audit entry.

Each account is set with a compare-and-set script: only if Redis still holds the value reconcile saw, so a
write that lands meanwhile is never overwritten (that account is reported as skipped; run reconcile again).
Transactions Redis lost are put back with their holds, idempotency keys and history entries, so Redis's own
invariants (balances == replayed journal, held == pending holds) hold again after the repair.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tokenbank.storage.hybrid import stream
from tokenbank.storage.hybrid.records import fetch, stored_hold, stored_transaction
from tokenbank.storage.hybrid.replicate import max_seq
from tokenbank.storage.redis import layout
from tokenbank.storage.redis.errors import translated
from tokenbank.storage.sql.schema import holds, transactions

if TYPE_CHECKING:
    from tokenbank.storage.hybrid.pair import StorePair
    from tokenbank.storage.hybrid.reports import ReconcileReport

CHUNK = 2000


async def repair_redis(store: StorePair, report: ReconcileReport) -> list[str]:
    """Apply the fixes ``report`` calls for, from PostgreSQL into Redis; returns one line per kind of fix."""
    notes: list[str] = []
    client, keys = store.redis.client, store.redis.keys
    if report.missing_in_redis:
        restored = await _restore_transactions(store, report.missing_in_redis)
        notes.append(f"restored {restored} transactions (with their holds) into Redis")
    floor = await max_seq(store.sql)
    if floor and (old := await stream.fence_seq(client, keys, floor)) is not None:
        notes.append(f"raised Redis seq from {old} to {floor}")
    fixed: list[str] = []
    skipped: list[str] = []
    for drift in report.drifted:
        seen, new = (drift.redis_balance, drift.redis_held), (drift.postgres_balance, drift.postgres_held)
        async with translated():
            done = await layout.set_account_if(client, keys, drift.user_id, seen, new)
        (fixed if done else skipped).append(drift.user_id)
    if fixed:
        notes.append(f"set {len(fixed)} accounts to PostgreSQL's balances")
    if skipped:
        notes.append(f"skipped {len(skipped)} accounts written meanwhile (run reconcile again): {skipped[:10]}")
    if report.supply_drift:
        async with translated():
            done = await layout.set_supply_if(client, keys, report.redis_total_supply, report.postgres_total_supply)
        notes.append(
            f"total supply {report.redis_total_supply} -> {report.postgres_total_supply}"
            if done
            else "total supply changed meanwhile: not repaired (run reconcile again)"
        )
    if report.missing_in_postgres:
        notes.append(f"{len(report.missing_in_postgres)} transactions exist only in Redis: left as they are")
    if notes:
        details = {
            "accounts": fixed, "skipped": skipped, "transactions_restored": len(report.missing_in_redis),
            "total_supply": [str(report.redis_total_supply), str(report.postgres_total_supply)],
        }  # fmt: skip
        await store.redis.append_audit("reconcile.repair", json.dumps(details, ensure_ascii=False))
    return notes


async def _restore_transactions(store: StorePair, ids: Sequence[str]) -> int:
    keys, token = store.redis.keys, store.sql.token
    restored = 0
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        stmt = sa.select(transactions).where(transactions.c.token == token, transactions.c.id.in_(chunk))
        rows: Sequence[Any] = await fetch(store.sql, stmt)
        hold_ids = sorted({row.hold_id for row in rows if row.hold_id})
        hold_rows: Sequence[Any] = []
        if hold_ids:
            q = sa.select(holds).where(holds.c.token == token, holds.c.id.in_(hold_ids))
            hold_rows = await fetch(store.sql, q)
        async with translated(), store.redis.client.pipeline(transaction=True) as pipe:
            layout.put_transactions(pipe, keys, map(stored_transaction, rows), keep_existing=True)
            # PostgreSQL's state of the hold wins (Redis may have lost its settlement).
            layout.put_holds(pipe, keys, map(stored_hold, hold_rows), unschedule_settled=True)
            await pipe.execute()
        restored += len(rows)
    return restored
