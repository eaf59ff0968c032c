"""The ledger invariants computed from Redis, read in chunks (HSCAN/ZSCAN) so big ledgers never block the server.

A chunked read is not a snapshot, so the scan is bracketed by the token's seq counter, which every
balance-changing script bumps: an unchanged seq means no write landed during the scan. Busy stores get a few
attempts; if writes keep arriving, the last scan's figures are reported with a note.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from redis.asyncio import Redis

from tokenbank.storage.base import CheckRecord
from tokenbank.storage.redis.keys import TokenKeys

ATTEMPTS = 3
_CHUNK = 2000
_SAMPLE = 5
_DEBIT = ("transfer", "burn", "hold", "reversal", "grant", "expire")  # a grant debits only when funded
_CREDIT = ("transfer", "mint", "capture", "reversal", "grant", "expire")


@dataclass
class _Scan:
    total: int | None = None
    balances: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    ranked: dict[str, float] = field(default_factory=dict)
    replayed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    minted: int = 0
    burned: int = 0
    closed: list[str] = field(default_factory=list)
    overdraft: dict[str, int] = field(default_factory=dict)
    bad_lot: str | None = None
    """The first lot found whose remaining is not within 0..amount (or not positive while open), described."""
    lots: int = 0


async def _hscan(client: Redis, key: str) -> AsyncIterator[tuple[str, str]]:
    async for item in client.hscan_iter(key, count=_CHUNK):
        yield item


async def _scan(client: Redis, keys: TokenKeys) -> _Scan:
    scan = _Scan()
    total = await client.hget(keys.token, "total_supply")
    scan.total = None if total is None else int(total)
    async for user, value in _hscan(client, keys.bal):
        scan.balances[user] = int(value)
    async for user, value in _hscan(client, keys.held):
        scan.held[user] = int(value)
    pending_ids = [hold_id async for hold_id, _ in client.zscan_iter(keys.hexp, count=_CHUNK)]
    for start in range(0, len(pending_ids), _CHUNK):
        for row in await client.hmget(keys.holds, pending_ids[start : start + _CHUNK]):
            hold = json.loads(row) if row is not None else None
            if hold is not None and hold["status"] == "pending":
                scan.pending[hold["from_user_id"]] += int(hold["amount"])
    async for user, score in client.zscan_iter(keys.lb, count=_CHUNK):
        scan.ranked[user] = score
    async for _, row in _hscan(client, keys.tx):
        _replay(scan, json.loads(row))
    open_lots: list[list[str]] = []
    async for _, row in _hscan(client, keys.lots):  # lots as storage/redis/lots.py describes them
        lot = json.loads(row)
        _check_lot(scan, lot, lot[7] if len(lot) > 7 else None, open_lot=True)
        open_lots.append(lot)
    await _check_order(client, keys, scan, open_lots)
    async for _, row in _hscan(client, keys.lotsdone):
        lot = json.loads(row)
        _check_lot(scan, lot, lot[7] if len(lot) > 7 else None, open_lot=False)
    async for user, row in _hscan(client, keys.ctrl):
        controls = json.loads(row)
        if controls.get("closed"):
            scan.closed.append(user)
        if controls.get("od") is not None:
            scan.overdraft[user] = int(controls["od"])
    return scan


def _check_lot(scan: _Scan, lot: list[str], user: str | None, *, open_lot: bool) -> None:
    scan.lots += 1
    if scan.bad_lot is not None:
        return
    lot_id, remaining, amount = lot[0], int(lot[1]), int(lot[2])
    if not 0 <= remaining <= amount or (remaining > 0) != open_lot:
        where = "open" if open_lot else "used up"
        scan.bad_lot = f"lot {lot_id} of {user!r}: remaining {remaining} of {amount} ({where})"


async def _check_order(client: Redis, keys: TokenKeys, scan: _Scan, open_lots: list[list[str]]) -> None:
    """Each open lot is in its account's spend-order set, scored by its expiry (a debit finds it only there)."""
    for start in range(0, len(open_lots), _CHUNK):
        part = open_lots[start : start + _CHUNK]
        async with client.pipeline(transaction=False) as pipe:
            for lot in part:
                pipe.zscore(keys.lot_order(lot[7]), lot[0])
            scores = await pipe.execute()
        for lot, score in zip(part, scores, strict=True):
            if scan.bad_lot is None and score != (float("inf") if lot[3] is None else float(lot[3])):
                scan.bad_lot = f"lot {lot[0]} of {lot[7]!r}: not in its spend order as it should be (score {score})"


def _replay(scan: _Scan, tx: dict[str, str]) -> None:
    kind, amount = tx["type"], int(tx["amount"])
    if kind in _DEBIT and tx.get("from_user_id"):
        scan.replayed[tx["from_user_id"]] -= amount
    if kind in _CREDIT:
        scan.replayed[tx["to_user_id"]] += amount
    if kind == "void":
        scan.replayed[tx["from_user_id"]] += amount
    if kind == "mint" or (kind == "grant" and not tx.get("from_user_id")):
        scan.minted += amount
    elif kind == "burn":
        scan.burned += amount


async def run_checks(client: Redis, keys: TokenKeys) -> list[CheckRecord]:
    """One CheckRecord per invariant (names shared with the SQL stores, plus the leaderboard check)."""
    note = ""
    for _ in range(ATTEMPTS):
        before = await client.get(keys.seq)
        scan = await _scan(client, keys)
        if await client.get(keys.seq) == before:
            break
    else:
        note = f" (writes arrived during each of {ATTEMPTS} scans; figures may be mixed)"
    if scan.total is None:
        return [CheckRecord("token initialized", False, f"no token under {keys.tag}")]
    return [CheckRecord("token initialized", True), *_checks(scan, scan.total, note)]


def _sample(users: list[str]) -> str:
    return ", ".join(sorted(users)[:_SAMPLE]) or "all match"


def _checks(scan: _Scan, total: int, note: str) -> list[CheckRecord]:
    in_accounts = sum(scan.balances.values()) + sum(scan.held.values())
    negative = [u for u, v in scan.balances.items() if v < -scan.overdraft.get(u, 0)]
    negative += [u for u, v in scan.held.items() if v < 0]
    held_mismatch = [u for u in {*scan.held, *scan.pending} if scan.held.get(u, 0) != scan.pending.get(u, 0)]
    replay_mismatch = [
        u for u in {*scan.balances, *scan.replayed} if scan.balances.get(u, 0) != scan.replayed.get(u, 0)
    ]
    positive = {u: v for u, v in scan.balances.items() if v > 0}
    board_mismatch = [u for u in {*positive, *scan.ranked} if scan.ranked.get(u) != -float(positive.get(u, 0))]
    supply = scan.minted - scan.burned
    closed_holding = [u for u in scan.closed if scan.balances.get(u, 0) or scan.held.get(u, 0)]
    return [
        CheckRecord(
            "balances + held == total supply",
            in_accounts == total,
            f"balances + held = {in_accounts}, total supply = {total}{note}",
        ),
        CheckRecord(
            "total supply == minted - burned",
            total == supply,
            f"minted {scan.minted}, burned {scan.burned}{note}",
        ),
        CheckRecord(
            "no balance below its overdraft", not negative, f"{len(negative)} accounts below their floor{note}"
        ),
        CheckRecord("held == pending holds", not held_mismatch, _sample(held_mismatch) + note),
        CheckRecord("balances == replayed ledger", not replay_mismatch, _sample(replay_mismatch) + note),
        CheckRecord("leaderboard == balances", not board_mismatch, _sample(board_mismatch) + note),
        CheckRecord("closed accounts hold nothing", not closed_holding, _sample(closed_holding) + note),
        CheckRecord("lots", scan.bad_lot is None, (scan.bad_lot or f"{scan.lots} lots within 0..amount") + note),
    ]
