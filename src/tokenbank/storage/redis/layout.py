"""Writes of a token's Redis key layout made from outside the write scripts: the hybrid sync worker's lease and
counter fences, and the rebuild and repair of Redis from PostgreSQL (``tokenbank rebuild-cache``, ``reconcile
--repair``). The layout itself is described in :mod:`tokenbank.storage.redis.keys` and docs/redis.md; keeping
every write of it here (and in the Lua scripts) means a change of layout is made in one package.

Pipeline helpers queue commands on a pipeline the caller executes; the others run at once. Errors are the
redis client's: callers wrap them (``storage.redis.errors.translated``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from tokenbank.storage.base import LotRecord
from tokenbank.storage.redis import lots as redis_lots
from tokenbank.storage.redis import scripts
from tokenbank.storage.redis.codec import to_us
from tokenbank.storage.redis.keys import TokenKeys


@dataclass(frozen=True, slots=True)
class StoredTransaction:
    """A journal entry as the ``:tx`` hash and its indexes hold it."""

    id: str
    seq: int
    json: str
    """The transaction's JSON as the ``:tx`` hash stores it."""
    idempotency_key: str | None
    reverses_id: str | None
    accounts: frozenset[str]
    """The accounts whose history index lists it (sender and receiver)."""


@dataclass(frozen=True, slots=True)
class StoredHold:
    id: str
    json: str
    """The hold's JSON as the ``:holds`` hash stores it."""
    pending: bool
    expires_us: int


# sync worker ---------------------------------------------------------------------------------------------
async def take_lease(client: Redis, keys: TokenKeys, owner: str, ms: int) -> bool:
    """Take or renew the token's sync lease for ``owner`` (``ms`` milliseconds); False if another holds it."""
    return bool(await scripts.run(client, "sync_lease", [keys.sync_lease], [owner, str(ms)]))


async def release_lease(client: Redis, keys: TokenKeys, owner: str) -> None:
    """Give the lease back if ``owner`` still holds it."""
    await scripts.run(client, "sync_release", [keys.sync_lease], [owner])


async def raise_counter(client: Redis, key: str, floor: int) -> int | None:
    """Raise the integer counter at ``key`` to at least ``floor``; the old value if it was raised, else None."""
    old, raised = await scripts.run(client, "raise_counter", [key], [str(floor)])
    return int(old) if int(raised) else None


# repair (compare-and-set) --------------------------------------------------------------------------------
async def set_account_if(
    client: Redis, keys: TokenKeys, user_id: str, seen: tuple[int, int], new: tuple[int, int]
) -> bool:
    """Set an account's (balance, held) to ``new`` if Redis still holds ``seen``; the leaderboard follows."""
    args = [user_id, str(seen[0]), str(seen[1]), str(new[0]), str(new[1])]
    return bool(await scripts.run(client, "set_account", [keys.bal, keys.held, keys.lb], args))


async def set_supply_if(client: Redis, keys: TokenKeys, seen: int, new: int) -> bool:
    """Set the total supply to ``new`` if Redis still holds ``seen``."""
    return bool(await scripts.run(client, "set_supply", [keys.token], [str(seen), str(new)]))


# rebuild and restore -------------------------------------------------------------------------------------
async def drop_token(client: Redis, keys: TokenKeys) -> None:
    """Delete the token hash first (every write script then answers "token not initialized"), then every
    other key of the token."""
    await client.delete(keys.token)
    doomed = [key async for key in client.scan_iter(match=keys.scan_pattern, count=1000)]
    for start in range(0, len(doomed), 1000):
        await client.unlink(*doomed[start : start + 1000])


async def put_token(client: Redis, keys: TokenKeys, fields: Mapping[str, str]) -> None:
    """Write the token hash (last step of a rebuild: from then on the scripts serve the token again)."""
    await client.hset(keys.token, mapping=dict(fields))  # type: ignore[arg-type]


async def set_counter(client: Redis, key: str, value: int) -> None:
    """Set a counter (``keys.seq``, ``keys.auditseq``)."""
    await client.set(key, str(value))


def put_accounts(pipe: Pipeline, keys: TokenKeys, accounts: Iterable[tuple[str, int, int]]) -> None:
    """Queue (user id, balance, held) rows: balances with their leaderboard entry, held amounts; zeros are
    left out, as the write scripts leave them, and only positive balances are ranked."""
    for user_id, balance, held in accounts:
        if balance:  # negative (an overdrawn account): kept, but not ranked
            pipe.hset(keys.bal, user_id, str(balance))
        if balance > 0:
            pipe.zadd(keys.lb, {user_id: f"-{balance}"})
        if held > 0:
            pipe.hset(keys.held, user_id, str(held))


def put_transactions(
    pipe: Pipeline, keys: TokenKeys, entries: Iterable[StoredTransaction], *, keep_existing: bool = False
) -> None:
    """Queue journal entries with their idempotency key, reversal link and history entries. With
    ``keep_existing``, entries (and keys, links) Redis has already are left as they are."""
    put = pipe.hsetnx if keep_existing else pipe.hset
    for entry in entries:
        put(keys.tx, entry.id, entry.json)
        if entry.idempotency_key:
            put(keys.idem, entry.idempotency_key, entry.id)
        if entry.reverses_id:
            put(keys.rev, entry.reverses_id, entry.id)
        for user_id in entry.accounts:
            pipe.zadd(keys.history(user_id), {entry.id: entry.seq})


def trim_histories(pipe: Pipeline, keys: TokenKeys, counts: Mapping[str, int], keep: int) -> None:
    """Queue the trim of each account's history index to its newest ``keep`` entries (``counts``: how many it
    holds), marking the account as trimmed."""
    for user_id, count in counts.items():
        pipe.zremrangebyrank(keys.history(user_id), 0, count - keep - 1)
        pipe.hset(keys.htrim, user_id, "1")


def put_holds(
    pipe: Pipeline, keys: TokenKeys, holds: Iterable[StoredHold], *, unschedule_settled: bool = False
) -> None:
    """Queue holds, pending ones in the expiry index. With ``unschedule_settled``, settled holds are removed
    from that index (a repair: Redis may still list a hold PostgreSQL knows is settled)."""
    for hold in holds:
        pipe.hset(keys.holds, hold.id, hold.json)
        if hold.pending:
            pipe.zadd(keys.hexp, {hold.id: hold.expires_us})
        elif unschedule_settled:
            pipe.zrem(keys.hexp, hold.id)


async def put_audit(client: Redis, keys: TokenKeys, entries: Mapping[str, str]) -> None:
    """Write audit entries by id (the id counter is set separately, with :func:`set_counter`)."""
    await client.hset(keys.audit, mapping=dict(entries))  # type: ignore[arg-type]


async def put_controls(client: Redis, keys: TokenKeys, entries: Mapping[str, str]) -> None:
    """Write account controls (account id -> the ctrl hash's JSON)."""
    await client.hset(keys.ctrl, mapping=dict(entries))  # type: ignore[arg-type]


def put_lots(pipe: Pipeline, keys: TokenKeys, lots: Iterable[LotRecord]) -> None:
    """Queue credit lots as the write scripts keep them (lua/lots.lua): open lots by id in ``lots``, in their
    account's spend-order set (and its availability set when they have an ``available_at``) and, with an expiry,
    in ``lotexp``; used-up lots in ``lotsdone``."""
    for lot in lots:
        row = json.dumps(redis_lots.encode(lot))
        if lot.remaining <= 0:
            pipe.hset(keys.lotsdone, lot.id, row)
            continue
        pipe.hset(keys.lots, lot.id, row)
        pipe.zadd(keys.lot_order(lot.user_id), {lot.id: redis_lots.order_score(lot)})
        if lot.available_at is not None:
            pipe.zadd(keys.lot_avail(lot.user_id), {lot.id: to_us(lot.available_at)})
        if lot.expires_at is not None:
            pipe.zadd(keys.lotexp, {f"{lot.id}:{lot.user_id}": to_us(lot.expires_at)})
