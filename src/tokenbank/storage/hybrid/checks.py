"""Hybrid verification and health: each store's own invariants, the two stores compared, sync lag.

Comparing the stores only means something once PostgreSQL has caught up, so the cross-store checks first wait
(bounded) for the backlog written before the call to drain, and re-read a few times while writes keep coming.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import Connection

from tokenbank.errors import TokenBankError
from tokenbank.storage.base import CheckRecord, TokenRecord
from tokenbank.storage.capabilities import HealthCheck, HealthStatus
from tokenbank.storage.hybrid import stream
from tokenbank.storage.hybrid.replicate import conflict_count
from tokenbank.storage.redis.errors import translated
from tokenbank.storage.sql import reads
from tokenbank.storage.sql.backend import SqlStorage
from tokenbank.storage.sql.schema import tokens, transactions

if TYPE_CHECKING:
    from tokenbank.storage.hybrid.pair import StorePair

VERIFY_DRAIN_WAIT = 10.0
POSTGRES_PING_TIMEOUT = 1.0
_ATTEMPTS = 3


async def ensure_postgres_token(sql: SqlStorage, token: TokenRecord) -> None:
    """The token's row in PostgreSQL with supply 0, before Redis mints anything: every supply change then
    reaches PostgreSQL through the stream, and a later open can tell a fresh ledger from a lost Redis."""

    def insert(conn: Connection) -> None:
        exists = conn.scalar(sa.select(tokens.c.symbol).where(tokens.c.symbol == token.symbol))
        if exists is None:
            reads.insert_token(conn, token)

    await sql.run_sync(insert, write=True)


def lag_threshold(store: StorePair) -> float:
    """Health turns ``degraded`` when the oldest entry not yet in PostgreSQL is older than this."""
    return store.settings.sync_lag_degraded_seconds


async def store_figures(store: StorePair) -> tuple[tuple[int, int], tuple[int, int]]:
    """(total supply, transaction count) in Redis and in PostgreSQL."""
    keys = store.redis.keys
    async with translated(), store.redis.client.pipeline(transaction=True) as pipe:
        pipe.hget(keys.token, "total_supply")
        pipe.hlen(keys.tx)
        supply, count = await pipe.execute()

    def read(conn: Connection) -> tuple[int, int]:
        total = conn.scalar(sa.select(tokens.c.total_supply).where(tokens.c.symbol == store.sql.token))
        rows = conn.scalar(sa.select(sa.func.count()).where(transactions.c.token == store.sql.token))
        return int(total or 0), int(rows or 0)

    return (int(supply or 0), int(count)), await store.sql.run_sync(read)


async def cross_checks(store: StorePair, drain_wait: float = VERIFY_DRAIN_WAIT) -> list[CheckRecord]:
    client, keys = store.redis.client, store.redis.keys
    drained = await stream.wait_drained(client, keys, drain_wait)
    backlog = await stream.read_backlog(client, keys)
    checks = [
        CheckRecord(
            "sync: postgresql caught up",
            drained,
            f"{backlog.entries} entries not yet in PostgreSQL, oldest {backlog.lag_seconds:.1f} s",
        )
    ]
    if drained:
        for _ in range(_ATTEMPTS):
            (r_supply, r_count), (p_supply, p_count) = await store_figures(store)
            if (r_supply, r_count) == (p_supply, p_count):
                break
            await stream.wait_drained(client, keys, drain_wait)
        checks.append(
            CheckRecord("stores: total supply equal", r_supply == p_supply, f"redis {r_supply}, postgresql {p_supply}")
        )
        checks.append(
            CheckRecord("stores: transaction count equal", r_count == p_count, f"redis {r_count}, postgresql {p_count}")
        )
    conflicts = await conflict_count(store.sql)
    checks.append(
        CheckRecord("sync: no quarantined conflicts", conflicts == 0, f"{conflicts} entries in tb_sync_conflicts")
    )
    return checks


async def verify_both(store: StorePair) -> list[CheckRecord]:
    """Redis's checks, PostgreSQL's checks, then the cross-store ones; a store that does not answer is one
    failed check, not an exception."""
    out: list[CheckRecord] = []
    out.extend(_prefixed("redis", await store.redis.verify()))
    try:
        cross = await cross_checks(store)
        out.extend(_prefixed("postgresql", await store.sql.verify()))
        out.extend(cross)
    except TokenBankError as exc:
        out.append(CheckRecord("postgresql reachable", False, f"{exc.code}: {exc.message}"))
    return out


def _prefixed(store: str, checks: list[CheckRecord]) -> list[CheckRecord]:
    return [CheckRecord(f"{store}: {check.name}", check.ok, check.detail) for check in checks]


async def health(store: StorePair) -> list[HealthCheck]:
    """PostgreSQL ping (``degraded`` when down: Redis still serves, the backlog waits), sync lag and backlog
    (``degraded`` past the threshold), and quarantined conflicts."""
    out: list[HealthCheck] = []
    started = time.perf_counter()
    postgres_up = True
    try:
        await asyncio.wait_for(store.sql.ping(), POSTGRES_PING_TIMEOUT)
        out.append(HealthCheck("postgresql", "ok", "ledger of record reachable", _ms(started)))
    except (TokenBankError, TimeoutError) as exc:
        postgres_up = False
        reason = exc.code if isinstance(exc, TokenBankError) else "timeout"
        detail = f"unreachable ({reason}); Redis still serves and the sync backlog waits"
        out.append(HealthCheck("postgresql", "degraded", detail, _ms(started)))
    started = time.perf_counter()
    backlog = await stream.read_backlog(store.redis.client, store.redis.keys)
    limit = lag_threshold(store)
    status: HealthStatus = "degraded" if backlog.lag_seconds > limit else "ok"
    detail = (
        f"lag {backlog.lag_seconds:.1f} s (degraded above {limit:g} s); backlog {backlog.entries} entries "
        f"({backlog.pending} pending)"
    )
    worker = store.sync_status()
    if worker is not None and worker.last_error and worker.role != "active":
        detail += f"; in-app worker {worker.role}: {worker.last_error}"
    out.append(HealthCheck("sync", status, detail, _ms(started)))
    if postgres_up:
        conflicts = await conflict_count(store.sql)
        if conflicts:
            out.append(
                HealthCheck("sync.conflicts", "degraded", f"{conflicts} entries quarantined: run tokenbank reconcile")
            )
    return out


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
