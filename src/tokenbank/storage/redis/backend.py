"""RedisStorage: one token's ledger in Redis 7, every write ONE Lua script call (atomic, exact to the unit)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from tokenbank.chain.proofs import Checkpoint
from tokenbank.errors import (
    InvalidRequestError,
    StorageError,
    StorageUnavailableError,
    SupplyCapExceededError,
    error_for,
)
from tokenbank.settings import Settings
from tokenbank.status import Status
from tokenbank.storage.base import (
    CONTROL_FIELDS,
    AuditRecord,
    CheckRecord,
    ControlsRecord,
    HistoryQuery,
    HoldRecord,
    LotRecord,
    OpResult,
    Storage,
    StoreStats,
    TokenRecord,
    TxRecord,
    WriteOp,
    configure_details,
    exclusions_to_text,
    register_storage,
)
from tokenbank.storage.capabilities import ChainEntry, ChainStore, ExchangeStore, LotStore
from tokenbank.storage.redis import codec, connect, events, lots, replicas, verify
from tokenbank.storage.redis import controls as redis_controls
from tokenbank.storage.redis.autopipeline import AutoPipeline
from tokenbank.storage.redis.chain import RedisChain
from tokenbank.storage.redis.errors import REDIS_ERRORS, RETRYABLE
from tokenbank.storage.redis.exchanges import ExchangeSender
from tokenbank.storage.redis.keys import HISTORY_RETENTION, STREAM_MAXLEN, TokenKeys
from tokenbank.storage.redis.scripts import Scripts
from tokenbank.storage.wire import LUA, from_us, to_us

T = TypeVar("T")

SOCKET_TIMEOUT = 2.0
"""Seconds before a silent server counts as down (every script is short, so a slow reply is an outage)."""
POOL_WAIT = 10.0
"""Seconds a call may wait for a free pooled connection under load before StorageUnavailableError."""


def make_client(settings: Settings, *, socket_timeout: float | None = SOCKET_TIMEOUT) -> Redis:
    """A client that fails fast and never resends on its own: a blind resend of a write could apply it twice,
    so resends happen only as :meth:`RedisStorage._retry_delay` allows, where the scripts deduplicate them. A
    ``redis+cluster://`` URL gives a Redis Cluster client (see storage/redis/connect.py). Raises
    ConfigurationError for a malformed REDIS_URL. ``socket_timeout=None``: the caller bounds each call itself
    (redis-py sends through ``asyncio.wait_for`` when a socket timeout is set, i.e. from a task of its own that
    runs only after everything already ready to run — which would hold a write batch back behind the work of
    every caller the previous batch woke)."""
    return connect.make_client(
        settings.redis_url,
        pool_size=settings.pool_size,
        pool_wait=POOL_WAIT,
        socket_timeout=socket_timeout,
        connect_timeout=SOCKET_TIMEOUT,
    )


class RedisStorage(Storage, ChainStore, ExchangeStore, LotStore):
    """A token's ledger in Redis. Keys: see :class:`~tokenbank.storage.redis.keys.TokenKeys` and docs/redis.md.

    ``stream_maxlen``: approximate cap of the ledger stream (None = never trimmed, for the hybrid sync worker).
    ``history_retention``: newest entries kept in each account's history index.
    """

    driver_errors = REDIS_ERRORS

    def __init__(
        self,
        settings: Settings,
        *,
        client: Redis | None = None,
        stream_maxlen: int | None = STREAM_MAXLEN,
        history_retention: int = HISTORY_RETENTION,
    ) -> None:
        self.settings = settings
        self.keys = TokenKeys.for_token(settings.key_prefix, settings.symbol, settings.ledger_group)
        self.client = client if client is not None else make_client(settings)
        # The write script's own connections: no socket timeout (see make_client), each call bounded by
        # asyncio.timeout instead, so a batch goes on the wire the moment it is launched.
        self._writes = client if client is not None else make_client(settings, socket_timeout=None)
        self.scripts = Scripts.register(self.client)
        self.chain = RedisChain(self.client, self.keys, self.scripts, settings.symbol)
        self.stats = StoreStats()
        self._common = [self.keys.history_prefix, str(history_retention), str(stream_maxlen or 0)]
        self._reads = AutoPipeline(self.client, self._retrying)
        # A cluster client's pools never wait: past their size a call fails. Scripts called one by one (control
        # changes, reads by script) wait here for one of half its connections instead, as a plain client's
        # blocking pool makes them (the other half serves the pipelined reads between them).
        self._script_slots = (
            asyncio.Semaphore(connect.cluster_connections(settings.pool_size) // 2) if connect.is_cluster(self.client)
            else contextlib.nullcontext()
        )  # fmt: skip
        # Write calls queue here, first come first served, for one of the write client's connections: its pool
        # wakes a waiter when a connection comes back, but a caller arriving meanwhile can take it first, so under
        # more concurrent writes than connections some waited past SOCKET_TIMEOUT and failed.
        self._write_slots = asyncio.Semaphore(
            connect.cluster_connections(settings.pool_size) if connect.is_cluster(self._writes) else settings.pool_size
        )
        # Redis runs one script at a time; two calls in flight keep it busy while the next batch travels.
        # Batches are capped so one script never blocks other clients for long.
        self._batch_writes(settings.batch_writes, max_in_flight=settings.write_concurrency or 2, max_ops=256)
        self._exchanges = ExchangeSender(self, SOCKET_TIMEOUT)

    # lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Check the server answers, load the scripts and move spend windows and credit lots an earlier build left
        in its layout. Raises StorageUnavailableError."""
        await self._retrying(lambda: self.scripts.load(self.client))
        if await self._cmd("EXISTS", self.keys.old_spent):
            keys = [self.keys.old_spent, self.keys.window]
            args = [self.keys.old_spends_prefix, self.keys.spends("")]
            await self._script(self.scripts.spend_layout, keys, args)
        if lots.old_layout(await self._cmd("HRANDFIELD", self.keys.lots, 1, "WITHVALUES")):
            args = [self.keys.lot_order(""), self.keys.lot_avail("")]
            await self._script(self.scripts.lots_layout, [self.keys.lots], args)

    async def close(self) -> None:
        for client in (self.client,) if self._writes is self.client else (self.client, self._writes):
            await connect.close_client(client)

    async def ping(self) -> None:
        await self._cmd("PING")

    async def listen(self, handler: Callable[[TxRecord], None]) -> Callable[[], Awaitable[None]] | None:
        """Balance events from every process, through Redis pub/sub (see events.py)."""
        return await events.listen(self.client, self.keys.token + ":events", handler)

    async def _cmd(self, *args: str | int) -> Any:
        """One plain command (reads), auto-pipelined with concurrent ones, through the error boundary."""
        return await self._reads.execute(*args)

    async def _script(
        self, script: AsyncScript, keys: list[str], args: Sequence[str | int], *, resend: bool = True
    ) -> Any:
        async with self._script_slots:
            return await self._retrying(lambda: script(keys=keys, args=args), resend=resend)

    async def _retry_delay(self, error: StorageError, attempt: int, *, resend: bool) -> float | None:
        """After a connection error the idle pooled connections are dropped (they point at a dead server) and
        the call is sent once more if that is safe: reads change nothing and the write scripts recognise an op
        they already applied by its id."""
        if attempt > 1 or not isinstance(error, StorageUnavailableError) or not isinstance(error.__cause__, RETRYABLE):
            return None
        await connect.drop_idle_connections(self.client)
        await connect.drop_idle_connections(self._writes)
        return 0 if resend else None

    # writes ------------------------------------------------------------------------------------------------
    async def create_token(self, token: TokenRecord, initial_mint: WriteOp | None) -> TokenRecord:
        details = {"name": token.name, "decimals": token.decimals, "initial_supply": str(token.initial_supply)}
        args = [
            *self._common,
            json.dumps(codec.token_fields(token), ensure_ascii=False),
            json.dumps(details, ensure_ascii=False),
            LUA.ops([initial_mint] if initial_mint is not None else []),
        ]
        raw = await self._script(self.scripts.create_token, self.keys.write_keys(), args)
        data = json.loads(raw)
        for item in data["r"] or ():
            if item["s"] != Status.OK:
                raise StorageError(f"initial mint failed: {Status(item['s']).name}")
        record = codec.token_from_hash(codec.pairs(data["token"]))
        assert record is not None
        return record

    async def update_token(self, changes: Mapping[str, object]) -> TokenRecord:
        """One script: the cap is compared with the supply and the fields change in the same atomic step."""
        values = {
            key: exclusions_to_text(value) if key == "leaderboard_exclude" else None if value is None else str(value)  # type: ignore[arg-type]
            for key, value in changes.items()
        }
        args = [json.dumps(values, ensure_ascii=False), configure_details(changes)]
        keys = [self.keys.token, self.keys.audit, self.keys.auditseq]
        data = json.loads(await self._script(self.scripts.update_token, keys, args, resend=False))
        status = Status(data["s"])
        if status is Status.SUPPLY_CAP_EXCEEDED:
            raise SupplyCapExceededError("the new max supply is below the total supply")
        if status is not Status.OK:
            raise error_for(status, f"token {self.settings.symbol}")
        record = codec.token_from_hash(codec.pairs(data["token"]))
        assert record is not None
        return record

    async def _send(self, ops: Sequence[WriteOp], atomic: bool) -> str:
        """One apply.lua call; its JSON answer (see _decode)."""
        if not ops:
            return "[]"
        args = [*self._common, "1" if atomic else "0", LUA.ops(ops)]
        async with self._write_slot(), asyncio.timeout(SOCKET_TIMEOUT):
            if self.settings.redis_wait_replicas:
                raw: str = await replicas.call_and_wait(
                    self._writes, self.scripts.apply, self.keys.write_keys(), args, self.settings.redis_wait_replicas
                )
            else:
                raw = await self.scripts.apply(keys=self.keys.write_keys(), args=args, client=self._writes)
        return raw

    @contextlib.asynccontextmanager
    async def _write_slot(self) -> AsyncIterator[None]:
        """One of the write client's connections, waited for in arrival order up to POOL_WAIT."""
        async with asyncio.timeout(POOL_WAIT):
            await self._write_slots.acquire()
        try:
            yield
        finally:
            self._write_slots.release()

    def _decode(self, raw: str) -> list[OpResult]:
        return LUA.results(raw)

    def exchange_problem(self, other: Storage) -> str | None:
        """Both tokens must be in one ledger group (TOKEN_LEDGER_GROUP) of one Redis: their keys then share one
        hash tag, so one script may touch both."""
        if type(other) is not type(self):
            return f"the banks use different kinds of store ({type(self).__name__}, {type(other).__name__})"
        assert isinstance(other, RedisStorage)
        if other.settings.symbol == self.settings.symbol:
            return "both banks hold the same token"
        mine, theirs = self.settings, other.settings
        if (mine.redis_url, mine.key_prefix) != (theirs.redis_url, theirs.key_prefix):
            return "the banks are on different Redis servers or key prefixes (REDIS_URL, TOKEN_KEY_PREFIX)"
        if mine.ledger_group is None or mine.ledger_group != theirs.ledger_group:
            groups = f"{mine.ledger_group!r} and {theirs.ledger_group!r}"
            return f"on Redis both tokens need one TOKEN_LEDGER_GROUP (one hash tag); the banks have {groups}"
        return None

    async def apply_exchange(self, other: Storage, op: WriteOp, other_op: WriteOp) -> tuple[OpResult, OpResult]:
        """One exchange.lua call (shared with concurrent exchanges between the same stores, see exchanges.py):
        each op with its own token's keys and rules, both or neither. The tokens are applied in the order of
        their symbols, as the SQL stores do, so every store reports the same leg when both would be refused."""
        assert isinstance(other, RedisStorage)
        if other.settings.symbol < self.settings.symbol:
            second, first = await other.apply_exchange(self, other_op, op)
            return first, second
        return await self._exchanges.apply(other, op, other_op)

    @property
    def common_args(self) -> list[str]:
        """ARGV 1-3 of the write scripts (history prefix, retention, stream MAXLEN)."""
        return self._common

    @property
    def write_client(self) -> Redis:
        """The client of the write scripts (no socket timeout: each call is bounded by asyncio.timeout)."""
        return self._writes

    async def append_audit(self, action: str, details: str) -> None:
        keys = [self.keys.audit, self.keys.auditseq]
        await self._script(self.scripts.append_audit, keys, [action, details], resend=False)

    # reads -------------------------------------------------------------------------------------------------
    async def get_token(self) -> TokenRecord | None:
        return codec.token_from_hash(codec.pairs(await self._cmd("HGETALL", self.keys.token)))

    async def get_balances(self, user_ids: Sequence[str]) -> dict[str, int]:
        ids = list(user_ids)
        if not ids:
            return {}
        values = await self._cmd("HMGET", self.keys.bal, *ids)
        return {user_id: int(value or 0) for user_id, value in zip(ids, values, strict=True)}

    async def get_held(self, user_id: str) -> int:
        return int(await self._cmd("HGET", self.keys.held, user_id) or 0)

    async def top_holders(self, limit: int, offset: int, exclude: Sequence[str]) -> list[tuple[str, int]]:
        keys = self._board_keys()
        flat = await self._script(self.scripts.top_holders, keys, [offset, limit, *exclude])
        base, rows = _ranked_rows(flat, exclude)
        return rows[offset - base : offset - base + limit]

    async def rank(self, user_id: str, exclude: Sequence[str]) -> int | None:
        if user_id in exclude:
            return None
        flat = await self._script(self.scripts.rank, self._board_keys(), [user_id, *exclude])
        if not flat:
            return None
        base, rows = _ranked_rows(flat, exclude)
        return base + [user for user, _ in rows].index(user_id) + 1

    def _board_keys(self) -> list[str]:
        return [self.keys.lb, self.keys.bal]

    async def sum_balances(self, user_ids: Sequence[str]) -> int:
        ids = list(user_ids)
        if not ids:
            return 0

        async def both() -> list[Any]:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hmget(self.keys.bal, ids)
                pipe.hmget(self.keys.held, ids)
                return await pipe.execute()

        balances, held = await self._retrying(both)
        return sum(int(v or 0) for v in (*balances, *held))

    async def history(self, query: HistoryQuery) -> list[TxRecord]:
        args: list[str | int] = [
            "+inf" if query.before_seq is None else f"({query.before_seq}",
            query.limit,
            "" if query.since is None else to_us(query.since),
            "" if query.until is None else to_us(query.until),
            ",".join(query.types or ()),
        ]
        keys = [self.keys.history(query.user_id), self.keys.tx]
        return [LUA.tx(row) for row in await self._script(self.scripts.history, keys, args)]

    async def get_transaction(self, tx_id: str) -> TxRecord | None:
        row = await self._cmd("HGET", self.keys.tx, tx_id)
        return None if row is None else LUA.tx(row)

    async def get_hold(self, hold_id: str) -> HoldRecord | None:
        row = await self._cmd("HGET", self.keys.holds, hold_id)
        return None if row is None else LUA.hold(row)

    async def expired_holds(self, now: datetime, limit: int) -> list[str]:
        until = to_us(now)
        return list(await self._cmd("ZRANGE", self.keys.hexp, "-inf", until, "BYSCORE", "LIMIT", 0, limit))

    async def balance_at(self, user_id: str, at: datetime) -> int:
        keys = [self.keys.history(user_id), self.keys.tx, self.keys.htrim]
        reply = await self._script(self.scripts.balance_at, keys, [user_id, to_us(at)])
        if reply[0] != "ok":
            raise InvalidRequestError(
                f"balance at {at.isoformat()} is older than the retained history of {user_id!r} in Redis"
            )
        return int(reply[1])

    async def audit_log(self, limit: int, before_id: int | None) -> list[AuditRecord]:
        top = int(await self._cmd("GET", self.keys.auditseq) or 0)
        if before_id is not None:
            top = min(top, before_id - 1)
        ids = list(range(top, max(top - limit, 0), -1))
        if not ids:
            return []
        out = []
        for entry_id, row in zip(ids, await self._cmd("HMGET", self.keys.audit, *ids), strict=True):
            if row is not None:
                m = json.loads(row)
                out.append(AuditRecord(entry_id, m["action"], m["details"], from_us(m["ts"])))
        return out

    async def set_controls(
        self, user_id: str, change: ControlsRecord, groups: Sequence[str], action: str, now: datetime | None = None
    ) -> Status:
        keys = [self.keys.ctrl, self.keys.bal, self.keys.held, self.keys.audit, self.keys.auditseq, self.keys.token,
                self.keys.window, self.keys.spends(user_id), self.keys.lot_order(user_id)]  # fmt: skip
        fields = [name for group in groups for name in CONTROL_FIELDS[group]]
        args = [user_id, change.to_json(user_id), json.dumps(fields), action, "" if now is None else to_us(now)]
        return Status(int(await self._script(self.scripts.set_controls, keys, args, resend=False)))

    async def get_controls(self, user_id: str, now: datetime) -> ControlsRecord | None:
        text = await self._cmd("HGET", self.keys.ctrl, user_id)
        if text is None:
            return None
        _, controls = ControlsRecord.from_json(text)
        if controls.window_seconds is None:
            return controls
        start = redis_controls.window_start_us(now, controls.window_seconds)
        keys = [self.keys.window, self.keys.spends(user_id)]
        spent = await self._script(self.scripts.window_spent, keys, [user_id, start])
        return replace(controls, window_spent=int(spent))

    # credit lots (lua/lots.lua, storage/redis/lots.py) ------------------------------------------------------
    async def get_lots(self, user_id: str) -> list[LotRecord]:
        rows = await self._read_script(self.scripts.account_lots, [self.keys.lot_order(user_id), self.keys.lots], [])
        return [lots.decode(row) for row in rows]

    async def expired_lots(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        members = await self._cmd("ZRANGE", self.keys.lotexp, "-inf", to_us(now), "BYSCORE", "LIMIT", 0, limit)
        return [lots.expiry_member(member) for member in members]

    async def expiring_lots(self, after: datetime, until: datetime, limit: int) -> list[LotRecord]:
        """Two reads: the expiry index, then the lots; a lot used up in between is no longer open and is left out
        (it has nothing left to warn about)."""
        members = await self._cmd(
            "ZRANGE", self.keys.lotexp, f"({to_us(after)}", to_us(until), "BYSCORE", "LIMIT", 0, limit
        )
        wanted = [lots.expiry_member(member) for member in members]
        rows = await self._cmd("HMGET", self.keys.lots, *(lot_id for lot_id, _ in wanted)) if wanted else []
        found = [lots.decode(row) for row in rows if row is not None]
        return [lot for lot in found if lot.remaining > 0]

    async def spendable_balances(self, user_ids: Sequence[str], now: datetime) -> dict[str, int]:
        """One round trip, shared with concurrent reads: spendable.lua reads each balance less what its lots hold
        locked at ``now``, at one moment, reading only the locked lots."""
        ids = list(user_ids)
        if not ids:
            return {}
        rows = await self._read_script(self.scripts.spendable, [self.keys.bal, self.keys.lots], [to_us(now), *ids])
        return {user: int(value) for user, value in zip(ids, rows, strict=True)}

    async def _read_script(self, script: AsyncScript, keys: list[str], args: Sequence[str | int]) -> Any:
        """A read-only script as a plain EVALSHA through the read auto-pipeline (no script slot, coalesced with
        concurrent reads); a server that lost its scripts (restart, SCRIPT FLUSH) gets it loaded again."""
        try:
            return await self._cmd("EVALSHA", script.sha, len(keys), *keys, *args)
        except StorageError as exc:
            if "NoScriptError" not in str(exc):
                raise
        return await self._script(script, keys, args)

    async def verify(self) -> list[CheckRecord]:
        return await self._retrying(lambda: verify.run_checks(self.client, self.keys))

    # hash chain (redis/chain.py) ---------------------------------------------------------------------------
    async def chain_seal(self, *, wait: float | None = None) -> None:
        await self._retrying(self.chain.seal)

    async def chain_entries(self, after_seq: int, limit: int) -> list[ChainEntry]:
        return await self._retrying(lambda: self.chain.entries(after_seq, limit))

    async def chain_hashes(self, after_seq: int, limit: int) -> dict[int, str]:
        return await self._retrying(lambda: self.chain.hashes(after_seq, limit))

    async def chain_entry(self, tx_id: str) -> ChainEntry | None:
        return await self._retrying(lambda: self.chain.entry(tx_id))

    async def chain_checkpoints(self, after_seq: int, limit: int) -> list[Checkpoint]:
        return await self._retrying(lambda: self.chain.checkpoints(after_seq, limit))

    async def chain_last_checkpoint(self) -> Checkpoint | None:
        return await self._retrying(self.chain.last_checkpoint)

    async def chain_add_checkpoint(self, checkpoint: Checkpoint) -> bool:
        return await self._retrying(lambda: self.chain.add_checkpoint(checkpoint), resend=False)


def _ranked_rows(flat: Sequence[Any], exclude: Sequence[str]) -> tuple[int, list[tuple[str, int]]]:
    """Parse a leaderboard script reply: (base rank, rows in exact order without excluded accounts)."""
    skip = set(exclude)
    rows = [(user, int(units)) for user, units in codec.pairs(flat[1:]).items() if user not in skip]
    rows.sort(key=lambda row: (-row[1], row[0]))
    return int(flat[0]), [row for row in rows if row[1] > 0]


@register_storage("redis")
def _redis_storage(settings: Settings) -> Storage:
    return RedisStorage(
        settings, stream_maxlen=settings.stream_maxlen or None, history_retention=settings.history_retention
    )
