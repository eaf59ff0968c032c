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
from tokenbank.storage.hybrid.records import fetch, hold_json, tx_json
from tokenbank.storage.hybrid.replicate import max_seq
from tokenbank.storage.redis.codec import to_us
from tokenbank.storage.redis.errors import translated
from tokenbank.storage.sql.schema import holds, transactions

if TYPE_CHECKING:
    from tokenbank.storage.hybrid.pair import StorePair
    from tokenbank.storage.hybrid.reports import ReconcileReport

CHUNK = 2000
_SET_ACCOUNT = """
local b = redis.call('HGET', KEYS[1], ARGV[1]) or '0'
local h = redis.call('HGET', KEYS[2], ARGV[1]) or '0'
if b ~= ARGV[2] or h ~= ARGV[3] then return 0 end
if ARGV[4] == '0' then
    redis.call('HDEL', KEYS[1], ARGV[1]) redis.call('ZREM', KEYS[3], ARGV[1])
else
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[4]) redis.call('ZADD', KEYS[3], '-' .. ARGV[4], ARGV[1])
end
if ARGV[5] == '0' then redis.call('HDEL', KEYS[2], ARGV[1]) else redis.call('HSET', KEYS[2], ARGV[1], ARGV[5]) end
return 1
"""
_SET_SUPPLY = """
if (redis.call('HGET', KEYS[1], 'total_supply') or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'total_supply', ARGV[2])
return 1
"""


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
        args = [drift.user_id, str(drift.redis_balance), str(drift.redis_held)]
        args += [str(drift.postgres_balance), str(drift.postgres_held)]
        async with translated():
            done = await client.eval(_SET_ACCOUNT, 3, keys.bal, keys.held, keys.lb, *args)
        (fixed if done else skipped).append(drift.user_id)
    if fixed:
        notes.append(f"set {len(fixed)} accounts to PostgreSQL's balances")
    if skipped:
        notes.append(f"skipped {len(skipped)} accounts written meanwhile (run reconcile again): {skipped[:10]}")
    if report.supply_drift:
        async with translated():
            done = await client.eval(
                _SET_SUPPLY, 1, keys.token, str(report.redis_total_supply), str(report.postgres_total_supply)
            )
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
            for row in rows:
                pipe.hsetnx(keys.tx, row.id, tx_json(row))
                if row.idempotency_key:
                    pipe.hsetnx(keys.idem, row.idempotency_key, row.id)
                if row.reverses_id:
                    pipe.hsetnx(keys.rev, row.reverses_id, row.id)
                for user in {row.from_user_id, row.to_user_id} - {None}:
                    pipe.zadd(keys.history(user), {row.id: row.seq})
            for hold in hold_rows:  # PostgreSQL's state of the hold wins (Redis may have lost its settlement)
                pipe.hset(keys.holds, hold.id, hold_json(hold))
                if hold.status == "pending":
                    pipe.zadd(keys.hexp, {hold.id: to_us(hold.expires_at)})
                else:
                    pipe.zrem(keys.hexp, hold.id)
            await pipe.execute()
        restored += len(rows)
    return restored
