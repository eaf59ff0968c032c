"""The journal's hash chain in Redis: the write scripts append ``seq:id`` of each transaction to the token's
``chain`` list (one RPUSH per call); this module's sealer hashes the entries after the fact, in list order, and
appends their hashes to ``chainhash`` (same positions).

Why not hash inside the write script: Redis 7's Lua offers SHA-1 only, and SHA-256 written in Lua costs more per
transaction than the whole transfer (docs/chain.md has the figures). Redis runs one script at a time and each
takes its seq inside, so list order is seq order and every listed entry is committed: the sealer never waits.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from redis.asyncio import Redis

from tokenbank.chain.encoding import GENESIS, chain_hash
from tokenbank.chain.proofs import Checkpoint
from tokenbank.errors import StorageError
from tokenbank.storage.base import TxRecord
from tokenbank.storage.capabilities import ChainEntry
from tokenbank.storage.redis.keys import TokenKeys
from tokenbank.storage.redis.scripts import Scripts
from tokenbank.storage.wire import LUA

BATCH = 2000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _split(item: str | bytes) -> tuple[int, str]:
    seq, _, tx_id = _text(item).partition(":")
    return int(seq), tx_id


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisChain:
    """One token's chain list, hashes and checkpoints on one client."""

    def __init__(self, client: Redis, keys: TokenKeys, scripts: Scripts, token: str) -> None:
        self.client = client
        self.keys = keys
        self.scripts = scripts
        self.token = token

    async def _records(self, items: list[str | bytes]) -> list[tuple[int, str, TxRecord | None]]:
        parsed = [_split(item) for item in items]
        rows = await self.client.hmget(self.keys.tx, [tx_id for _, tx_id in parsed]) if parsed else []
        return [
            (seq, tx_id, None if row is None else LUA.tx(row)) for (seq, tx_id), row in zip(parsed, rows, strict=True)
        ]

    async def seal(self) -> None:
        """Hash the listed entries not hashed yet. Raises StorageError when a listed transaction is gone or
        disagrees with the list (nothing is hashed from there on)."""
        while True:
            done = await self.client.llen(self.keys.chain_hashes)
            items = await self.client.lrange(self.keys.chain, done, done + BATCH - 1)
            if not items:
                return
            last = None if done == 0 else await self.client.lindex(self.keys.chain_hashes, done - 1)
            prev = GENESIS if last is None else _text(last)
            hashes = []
            for seq, tx_id, tx in await self._records(items):
                if tx is None or tx.seq != seq or tx.id != tx_id:
                    raise StorageError(f"chain broken at seq {seq}: its transaction {tx_id} is missing or differs")
                prev = chain_hash(prev, self.token, tx)
                hashes.append(prev)
            await self.scripts.chain_seal(keys=[self.keys.chain_hashes], args=[done, *hashes])

    async def position(self, after_seq: int) -> int:
        """The first list position whose seq is above ``after_seq`` (binary search: positions are in seq order)."""
        lo, hi = 0, await self.client.llen(self.keys.chain)
        while lo < hi:
            mid = (lo + hi) // 2
            item = await self.client.lindex(self.keys.chain, mid)
            if item is not None and _split(item)[0] <= after_seq:
                lo = mid + 1
            else:
                hi = mid
        return lo

    async def entries(self, after_seq: int, limit: int) -> list[ChainEntry]:
        return await self.entries_at(await self.position(after_seq), limit)

    async def entries_at(self, start: int, limit: int) -> list[ChainEntry]:
        """Up to ``limit`` entries from list position ``start`` on."""
        items = await self.client.lrange(self.keys.chain, start, start + limit - 1)
        hashes = await self.client.lrange(self.keys.chain_hashes, start, start + len(items) - 1) if items else []
        out = []
        for i, (seq, tx_id, tx) in enumerate(await self._records(items)):
            if tx is None:  # listed but gone: an entry no hash can match
                tx = TxRecord(seq=seq, id=tx_id, type="missing", from_user_id=None, to_user_id=None, amount=0,
                              timestamp=_EPOCH)  # fmt: skip
            out.append(ChainEntry(tx, _text(hashes[i]) if i < len(hashes) else None))
        return out

    async def hashes(self, after_seq: int, limit: int) -> dict[int, str]:
        """The hash of each sealed entry among the ``limit`` listed after ``after_seq``, by seq (read off the two
        lists alone: no transaction is fetched or decoded, which is what copying hashes elsewhere needs)."""
        start = await self.position(after_seq)
        items = await self.client.lrange(self.keys.chain, start, start + limit - 1)
        hashes = await self.client.lrange(self.keys.chain_hashes, start, start + len(items) - 1) if items else []
        return {_split(item)[0]: _text(value) for item, value in zip(items, hashes, strict=False)}

    async def entry(self, tx_id: str) -> ChainEntry | None:
        row = await self.client.hget(self.keys.tx, tx_id)
        if row is None:
            return None
        tx = LUA.tx(row)
        for item in await self.entries(tx.seq - 1, 1):
            if item.tx.id == tx_id:
                return ChainEntry(tx, item.hash)
        return ChainEntry(tx, None)  # older than the chain

    async def checkpoints(self, after_seq: int, limit: int) -> list[Checkpoint]:
        rows = [Checkpoint.from_dict(json.loads(row)) for row in await self.client.lrange(self.keys.checkpoints, 0, -1)]
        return [cp for cp in rows if cp.seq > after_seq][:limit]

    async def last_checkpoint(self) -> Checkpoint | None:
        row = await self.client.lindex(self.keys.checkpoints, -1)
        return None if row is None else Checkpoint.from_dict(json.loads(row))

    async def add_checkpoint(self, checkpoint: Checkpoint) -> bool:
        args = [str(checkpoint.previous_seq), json.dumps(checkpoint.as_dict(), sort_keys=True)]
        return bool(await self.scripts.chain_checkpoint(keys=[self.keys.checkpoints], args=args))
