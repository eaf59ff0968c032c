"""Hybrid mode beside redis mode, in one run: the hot path's cost with the sync worker in its own process, the
sync lag at half of redis mode's maximum rate, and the drain of a backlog into PostgreSQL.

    .venv/bin/python benchmarks/hybrid_sync.py [--quick] [--json out.json] [--shared-redis] [--worker-command sync]

1. Hot path. ``bank.transfer()`` from 50 tasks for a fixed time, in alternating cells (median of 3 rounds):
   redis mode, and hybrid mode with the app's bank opened with ``background="none"`` while the sync runs as
   ``python -m tokenbank sync`` (or ``worker``) in its own process. Per transfer: the app process's CPU plus the
   Redis server's (``INFO cpu`` used_cpu_sys + used_cpu_user), during the cell. Per entry, from the cell's start
   until the worker has drained it: the worker process's CPU, the CPU of the PostgreSQL backends serving it
   (found by its sockets' ports in pg_stat_activity) and of every postgres process (/proc). Target: hybrid's
   hot path <= 1.25x redis mode's. A slower mode batches fewer transfers per Lua call, which costs more per
   transfer, so both are also measured paced at the same rate (that of step 2).
2. Sync lag: ``bank.transfer()`` paced at 50 % of redis mode's median rate from step 1 (a fixed schedule, 50
   tasks), then once at full speed. Per entry: when its PostgreSQL commit became visible (a thread polls
   tb_sync_state every 2 ms, so this is an upper bound) minus its Redis commit time (created_at, from Redis's
   clock on this machine). Target: p99 < 250 ms at 50 %.
3. Drain: a backlog of 1,000,000 entries (12,000 with --quick) written with no worker running, then one worker
   drains it in chunks that take three modes in turn: as shipped (read-ahead on: reading the next batch while
   PostgreSQL writes the current one; batches of 20,000), read-ahead off (the baseline), and read-ahead on with
   batches of 5,000 (the default before); beside it sql mode's ``bank.transfer()`` rate on the same PostgreSQL.
   Target: >= 20,000 entries/s as shipped.
Redis is a redis-server started for the run (its INFO cpu then counts this run only) unless --shared-redis or
there is none on PATH; PostgreSQL is the shared one (the all-process figure includes whatever else runs there).
Everything lives in its own schema and key prefix, removed at the end. Targets are printed, never asserted: the
exit status is 0 unless something failed or the stores disagree afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import os
import random
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from _common import (
    LoadResult,
    busy_warning,
    environment,
    format_table,
    median_run,
    percentile,
    postgres_cpu,
    process_cpu_seconds,
    run_closed_loop,
    run_paced,
    socket_ports,
    write_json,
)
from redis_transfers import private_redis
from tokenbank import Settings, TokenBank, TransferRequest
from tokenbank.storage.hybrid import stream
from tokenbank.storage.hybrid.backend import HybridStorage
from tokenbank.storage.hybrid.reconcile import reconcile
from tokenbank.storage.hybrid.status import SyncOptions
from tokenbank.storage.hybrid.worker import SyncWorker

DSN = os.environ.get("TOKENBANK_BENCH_DSN", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("TOKENBANK_BENCH_REDIS", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 50
BATCH = 1000
LAG_SHARE = 0.5
"""The sync-lag target holds at this share of redis mode's measured maximum rate."""
POLL_S = 0.002
OTHER_BATCH = 5_000
"""Drain: the batch size (``tokenbank sync --batch-size``) of the third mode: the default before 20,000."""
TARGET_HOT_RATIO = 1.25
TARGET_LAG_P99_MS = 250.0
TARGET_DRAIN = 20_000.0
BEFORE = {
    "hot": "73 vs 53 us per transfer, 1.39x (worker in the app's process)",
    "lag": "p99 452 ms at 80 % of the hybrid max (worker in the app's process)",
    "drain": "10,755-18,631 entries/s",
}
"""Figures measured before the worker could run in its own process and read ahead (docs/performance.md)."""


@dataclass(frozen=True, slots=True)
class Plan:
    accounts: int
    seconds: float
    warmup: float
    backlog: int
    rounds: int
    chunk: int
    """Drain: entries per chunk; chunks take the drain modes in turn (read-ahead off, on, on with other batches).
    A batch never exceeds a chunk (with --quick's small chunks the modes then differ only in read-ahead)."""


FULL = Plan(accounts=10_000, seconds=10.0, warmup=1.0, backlog=1_000_000, rounds=3, chunk=80_000)
QUICK = Plan(accounts=500, seconds=1.0, warmup=0.2, backlog=12_000, rounds=1, chunk=2_000)


@dataclass(frozen=True, slots=True)
class Run:
    """Where this run's ledgers live."""

    schema: str
    prefix: str
    redis_url: str

    def settings(self, mode: str, symbol: str, **extra: Any) -> Settings:
        return Settings.load(
            storage_mode=mode, database_url=DSN, database_schema=self.schema, redis_url=self.redis_url,
            key_prefix=self.prefix, symbol=symbol, initial_supply=10**12, decimals=0, hold_sweep_interval=0,
            pool_size=CONCURRENCY, **extra,
        )  # fmt: skip


async def funded(bank: TokenBank, accounts: list[str]) -> None:
    for start in range(0, len(accounts), BATCH):
        chunk = accounts[start : start + BATCH]
        results = await bank.transfer_many([TransferRequest("treasury", a, 10**6) for a in chunk])
        assert all(r.ok for r in results)


def transfer_op(bank: TokenBank, accounts: list[str], seed: int) -> Callable[[], Awaitable[None]]:
    rng = random.Random(seed)

    async def one() -> None:
        a, b = rng.sample(accounts, 2)
        await bank.transfer(a, b, 1)

    return one


# CPU probes -----------------------------------------------------------------------------------------------------
async def redis_cpu(client: aioredis.Redis) -> float:
    cpu = await client.info("cpu")
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


async def backend_cpu(admin: asyncpg.Connection, pid: int) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving process ``pid`` (by its sockets' ports)."""
    ports = sorted(socket_ports(pid))
    rows = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[])", ports)
    return {row["pid"]: process_cpu_seconds(row["pid"]) for row in rows}


@dataclass(frozen=True, slots=True)
class Probe:
    app: float
    redis: float
    worker: float
    backends: dict[int, float]
    postgres: float
    seq: int


async def probe(client: aioredis.Redis, admin: asyncpg.Connection, worker_pid: int, seq_key: str | None) -> Probe:
    return Probe(
        app=time.process_time(), redis=await redis_cpu(client), worker=process_cpu_seconds(worker_pid),
        backends=await backend_cpu(admin, worker_pid), postgres=postgres_cpu(),
        seq=int(await client.get(seq_key) or 0) if seq_key else 0,
    )  # fmt: skip


def backends_delta(before: Probe, after: Probe) -> float:
    return sum(cpu - before.backends.get(pid, 0.0) for pid, cpu in after.backends.items())


# the sync worker's own process ------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def worker_process(run: Run, symbol: str, command: str, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m tokenbank <command>`` syncing ``symbol``, stopped with SIGTERM (as a deployment stops it)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOKEN_")}
    env.update(
        TOKEN_STORAGE_MODE="hybrid", REDIS_URL=run.redis_url, DATABASE_URL=DSN, TOKEN_DATABASE_SCHEMA=run.schema,
        TOKEN_KEY_PREFIX=run.prefix, TOKEN_SYMBOL=symbol, TOKEN_DECIMALS="0", TOKEN_INITIAL_SUPPLY=str(10**12),
        PYTHONPATH=str(ROOT / "src"),
    )  # fmt: skip
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tokenbank", command, env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def drained(store: HybridStorage, within: float = 300) -> bool:
    return await stream.wait_drained(store.redis.client, store.redis.keys, within)


# 1. the hot path --------------------------------------------------------------------------------------------------
async def load(one: Callable[[], Awaitable[None]], seconds: float, rate: float | None) -> LoadResult:
    """``one`` from CONCURRENCY tasks for ``seconds``: back to back, or started at ``rate`` per second."""
    if rate is None:
        return await run_closed_loop(one, CONCURRENCY, seconds=seconds)
    return await run_paced(one, CONCURRENCY, rate, seconds=seconds)


async def redis_cell(
    bank: TokenBank, accounts: list[str], plan: Plan, client: aioredis.Redis, rate: float | None = None
) -> dict[str, Any]:
    one = transfer_op(bank, accounts, seed=7)
    await load(one, plan.warmup, rate)
    app, cpu = time.process_time(), await redis_cpu(client)
    result = await load(one, plan.seconds, rate)
    app, cpu = time.process_time() - app, await redis_cpu(client) - cpu
    return {**result.as_dict(), **per_op("", app, cpu, result.count)}


async def hybrid_cell(
    bank: TokenBank,
    accounts: list[str],
    plan: Plan,
    admin: asyncpg.Connection,
    worker_pid: int,
    rate: float | None = None,
) -> dict[str, Any]:
    store = bank.storage
    assert isinstance(store, HybridStorage)
    client, seq_key = store.redis.client, store.redis.keys.seq
    one = transfer_op(bank, accounts, seed=8)
    await load(one, plan.warmup, rate)
    await drained(store)
    start = await probe(client, admin, worker_pid, seq_key)
    result = await load(one, plan.seconds, rate)
    hot = await probe(client, admin, worker_pid, seq_key)
    ok = await drained(store)
    end = await probe(client, admin, worker_pid, seq_key)
    entries = end.seq - start.seq
    return {
        **result.as_dict(), **per_op("", hot.app - start.app, hot.redis - start.redis, result.count),
        "entries": entries, "drained": ok, "worker_us": (end.worker - start.worker) / entries * 1e6,
        "pg_backends_us": backends_delta(start, end) / entries * 1e6,
        "pg_all_us": (end.postgres - start.postgres) / entries * 1e6,
    }  # fmt: skip


def per_op(prefix: str, app: float, redis: float, count: int) -> dict[str, float]:
    return {
        f"{prefix}app_us": app / count * 1e6, f"{prefix}redis_us": redis / count * 1e6,
        f"{prefix}hot_us": (app + redis) / count * 1e6,
    }  # fmt: skip


def medians(cells: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds (the throughput cells' median run for tps and latencies)."""
    out = dict(cells[0])
    for name, value in cells[0].items():
        if isinstance(value, float):
            out[name] = percentile([cell[name] for cell in cells], 50)
    runs = [LoadResult(c["count"], c["seconds"], c["p50_ms"], c["p99_ms"]) for c in cells]
    return {**out, **median_run(runs).as_dict()}


# 2. sync lag ------------------------------------------------------------------------------------------------------
class CommitWatch:
    """A thread of its own polling tb_sync_state every POLL_S: when each seq's PostgreSQL commit became visible."""

    def __init__(self, schema: str, token: str) -> None:
        self.schema, self.token = schema, token
        self.points: list[tuple[float, int]] = []
        self.longest_poll_gap = 0.0
        """The longest time between two polls' starts: a lag no longer than it may be the watch's own delay."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._poll()), daemon=True)

    def __enter__(self) -> CommitWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def last_seq(self) -> int:
        return self.points[-1][1] if self.points else 0

    async def _poll(self) -> None:
        conn = await asyncpg.connect(DSN.replace("+asyncpg", ""), server_settings={"search_path": self.schema})
        try:
            last = time.perf_counter()
            while not self._stop.is_set():
                now = time.perf_counter()
                self.longest_poll_gap, last = max(self.longest_poll_gap, now - last), now
                seq = await conn.fetchval("SELECT last_seq FROM tb_sync_state WHERE token = $1", self.token)
                if seq is not None and int(seq) != self.last_seq:
                    self.points.append((time.time(), int(seq)))
                await asyncio.sleep(POLL_S)
        finally:
            await conn.close()

    async def reached(self, seq: int, within: float) -> bool:
        """Wait (at most ``within`` seconds) until the watch has seen ``seq`` committed."""
        for _ in range(int(within / 0.01)):
            if self.last_seq >= seq:
                return True
            await asyncio.sleep(0.01)
        return self.last_seq >= seq

    def lags(self, entries: Sequence[tuple[int, float]]) -> tuple[list[float], int]:
        """Seconds from each (seq, Redis commit time) to its first sighting in PostgreSQL; and how many were
        never seen."""
        seqs = [seq for _, seq in self.points]
        out, unseen = [], 0
        for seq, created in entries:
            at = bisect.bisect_left(seqs, seq)
            if at == len(seqs):
                unseen += 1
            else:
                out.append(self.points[at][0] - created)
        return out, unseen


async def lag_run(
    bank: TokenBank, accounts: list[str], plan: Plan, run: Run, admin: asyncpg.Connection, rate: float | None
) -> dict[str, Any]:
    """``bank.transfer()`` at ``rate`` (None: as fast as it goes) with the commit watch on."""
    store = bank.storage
    assert isinstance(store, HybridStorage)
    one = transfer_op(bank, accounts, seed=9)
    with CommitWatch(run.schema, store.token) as watch:
        await load(one, plan.warmup, rate)
        started = time.time()
        result = await load(one, plan.seconds, rate)
        ended = time.time()
        drained_ok = await drained(store)
        final = int(await store.redis.client.get(store.redis.keys.seq) or 0)
        await watch.reached(final, within=5)
    rows = await admin.fetch(
        "SELECT seq, extract(epoch FROM created_at)::float8 AS at FROM tb_transactions "
        "WHERE token = $1 AND created_at BETWEEN to_timestamp($2) AND to_timestamp($3)",
        store.token, started, ended,
    )  # fmt: skip
    lags, unseen = watch.lags([(int(row["seq"]), float(row["at"])) for row in rows])
    return {
        **result.as_dict(), "offered_per_s": rate, "entries": len(lags), "unseen": unseen, "drained": drained_ok,
        "lag_p50_ms": percentile(lags, 50) * 1000, "lag_p99_ms": percentile(lags, 99) * 1000,
        "lag_max_ms": max(lags, default=float("nan")) * 1000, "watch_longest_gap_ms": watch.longest_poll_gap * 1000,
    }  # fmt: skip


# phases 1 and 2 ---------------------------------------------------------------------------------------------------
async def online(plan: Plan, run: Run, command: str, out: dict[str, Any], log: Path) -> None:
    """Steps 1 and 2: both banks open throughout, the worker process syncing the hybrid one."""
    accounts = [f"a{i:06d}" for i in range(plan.accounts)]
    admin = await asyncpg.connect(DSN.replace("+asyncpg", ""), server_settings={"search_path": run.schema})
    try:
        async with (
            TokenBank(run.settings("redis", "BR")) as redis_bank,
            TokenBank(run.settings("hybrid", "BH", background="none")) as hybrid_bank,
            worker_process(run, "BH", command, log) as proc,
        ):
            store = hybrid_bank.storage
            assert isinstance(store, HybridStorage) and store.worker is None
            await funded(redis_bank, accounts)
            await funded(hybrid_bank, accounts)
            for _ in range(60):  # the worker process starts (imports, connects), then syncs the funding
                if proc.returncode is not None or await drained(store, 2):
                    break
            if proc.returncode is not None or not await drained(store, 0):
                raise RuntimeError(f"the worker process did not sync the funding (its log: {log})")
            client = store.redis.client
            redis_cells, hybrid_cells = [], []
            for _ in range(plan.rounds):
                redis_cells.append(await redis_cell(redis_bank, accounts, plan, client))
                hybrid_cells.append(await hybrid_cell(hybrid_bank, accounts, plan, admin, proc.pid))
            out["redis"], out["hybrid"] = medians(redis_cells), medians(hybrid_cells)
            out["cells"] = {"redis": redis_cells, "hybrid": hybrid_cells}
            rate = LAG_SHARE * out["redis"]["tps"]
            # the same costs at the same offered rate in both modes (no throughput-dependent batching gap)
            out["redis_paced"] = await redis_cell(redis_bank, accounts, plan, client, rate)
            out["hybrid_paced"] = await hybrid_cell(hybrid_bank, accounts, plan, admin, proc.pid, rate)
            out["lag_paced"] = await lag_run(hybrid_bank, accounts, plan, run, admin, rate)
            out["lag_full"] = await lag_run(hybrid_bank, accounts, plan, run, admin, None)
            out["hybrid_reconcile_ok"] = (await reconcile(store)).ok
            out["hybrid_verify_ok"] = (await hybrid_bank.verify()).ok
            if proc.returncode is not None:
                raise RuntimeError(f"the worker process exited with {proc.returncode} (its log: {log})")
    finally:
        await admin.close()


# 3. drain ---------------------------------------------------------------------------------------------------------
async def drain(plan: Plan, run: Run, out: dict[str, Any]) -> None:
    accounts = [f"d{i:06d}" for i in range(plan.accounts)]
    admin = await asyncpg.connect(DSN.replace("+asyncpg", ""), server_settings={"search_path": run.schema})
    try:
        async with TokenBank(run.settings("hybrid", "BD", background="none")) as bank:
            store = bank.storage
            assert isinstance(store, HybridStorage)
            await funded(bank, accounts)
            rng, written, started = random.Random(11), len(accounts) + 1, time.perf_counter()
            while written < plan.backlog:
                size = min(BATCH, plan.backlog - written)
                pairs = [rng.sample(accounts, 2) for _ in range(size)]
                await bank.transfer_many([TransferRequest(sender, receiver, 1) for sender, receiver in pairs])
                written += size
            out["backlog"] = {"entries": written, "written_s": time.perf_counter() - started}
            out["drain"] = await drain_chunks(store, plan, admin)
            out["drain_reconcile_ok"] = (await reconcile(store)).ok
        async with TokenBank(run.settings("sql", "BS")) as bank:
            await funded(bank, accounts[:1000])
            one = transfer_op(bank, accounts[:1000], seed=12)
            await run_closed_loop(one, CONCURRENCY, seconds=plan.warmup)
            out["sql_single"] = (await run_closed_loop(one, CONCURRENCY, seconds=plan.seconds)).as_dict()
    finally:
        await admin.close()


DRAIN_MODES = {"off": (False, None), "on": (True, None), "on_other": (True, OTHER_BATCH)}
"""Drain modes in turn: read-ahead (and batch size: None for the default) of each chunk."""


async def drain_chunks(store: HybridStorage, plan: Plan, admin: asyncpg.Connection) -> dict[str, Any]:
    """One worker (this process: nothing else runs here meanwhile) drains the backlog, ``plan.chunk`` entries
    at a time, the modes in turn; each mode's entries, seconds and CPU add up."""
    worker = SyncWorker(store.redis, store.sql, SyncOptions(consumer="bench-drain"))
    default = worker.options
    totals = {mode: {"entries": 0, "batches": 0, "seconds": 0.0, "cpu": 0.0, "pg": 0.0} for mode in DRAIN_MODES}
    chunks: list[dict[str, Any]] = []
    try:
        await worker.prepare()
        handled, turn = -1, 0
        while handled != 0:
            name = list(DRAIN_MODES)[turn % len(DRAIN_MODES)]
            ahead, size = DRAIN_MODES[name]
            worker.options = replace(default, batch_size=min(size or default.batch_size, plan.chunk))
            mode, pid = totals[name], os.getpid()
            t0, cpu0, pg0 = time.perf_counter(), time.process_time(), await backend_cpu(admin, pid)
            done = batches = 0
            while done < plan.chunk and (handled := await worker.step(read_ahead=ahead)):
                done, batches = done + handled, batches + 1
            seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            pg = sum(value - pg0.get(p, 0.0) for p, value in (await backend_cpu(admin, pid)).items())
            chunks.append({"mode": name, "entries": done, "seconds": seconds, "cpu": cpu, "pg": pg})
            for key, value in (("entries", done), ("batches", batches), ("seconds", seconds), ("cpu", cpu), ("pg", pg)):
                mode[key] += value
            turn += 1
        ok = await drained(store, 10)
    finally:
        await worker.close()
    for mode in totals.values():
        n = mode["entries"] or 1
        mode.update(per_s=mode["entries"] / mode["seconds"] if mode["seconds"] else 0.0)
        mode.update(worker_us=mode["cpu"] / n * 1e6, pg_us=mode["pg"] / n * 1e6)
    return {
        **totals, "chunks": chunks, "entries": worker.status.synced, "entries_per_s": totals["on"]["per_s"],
        "batch_size": default.batch_size, "drained": ok,
    }  # fmt: skip


async def cleanup(run: Run) -> None:
    conn = await asyncpg.connect(DSN.replace("+asyncpg", ""), timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{run.schema}" CASCADE')
    finally:
        await conn.close()
    client = aioredis.Redis.from_url(run.redis_url, decode_responses=True)
    try:
        batch = []
        async for key in client.scan_iter(match="{" + run.prefix + ":*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()


# report -----------------------------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(out: dict[str, Any]) -> bool:
    """Print every figure beside its baseline, their ratio and the verdict; True when the stores agree."""
    r, h = out["redis"], out["hybrid"]
    hot_ratio = h["hot_us"] / r["hot_us"]
    rows: list[list[object]] = [
        ["transfer() per s, 50 tasks", r["tps"], h["tps"], h["tps"] / r["tps"], "-"],
        ["p99 latency, ms", r["p99_ms"], h["p99_ms"], h["p99_ms"] / r["p99_ms"], "-"],
        ["app process CPU, us/transfer", r["app_us"], h["app_us"], h["app_us"] / r["app_us"], "-"],
        ["Redis server CPU, us/transfer", r["redis_us"], h["redis_us"], h["redis_us"] / r["redis_us"], "-"],
        ["hot path (app + Redis), us/transfer", r["hot_us"], h["hot_us"], hot_ratio,
         f"<= {TARGET_HOT_RATIO}x: {verdict(hot_ratio <= TARGET_HOT_RATIO)}"],
    ]  # fmt: skip
    rp, hp = out["redis_paced"], out["hybrid_paced"]
    rows.append([f"same, both paced at {rp['tps']:,.0f}/{hp['tps']:,.0f} done", rp["hot_us"], hp["hot_us"],
                 hp["hot_us"] / rp["hot_us"], "-"])  # fmt: skip
    print(format_table(["1. hot path (worker in its own process)", "redis mode", "hybrid", "ratio", "target"], rows))
    print(f"   before: {BEFORE['hot']}")
    print(f"   hybrid, per synced entry: worker process {h['worker_us']:.1f} us CPU, the PostgreSQL backends serving "
          f"it {h['pg_backends_us']:.1f} us, all postgres processes {h['pg_all_us']:.1f} us")  # fmt: skip
    paced, full = out["lag_paced"], out["lag_full"]
    lag_ok = paced["lag_p99_ms"] < TARGET_LAG_P99_MS and not paced["unseen"]
    rows = [
        [f"at {LAG_SHARE:.0%} of redis max: {paced['offered_per_s']:,.0f}/s offered, {paced['tps']:,.0f} done",
         paced["lag_p50_ms"], paced["lag_p99_ms"], paced["lag_max_ms"], paced["entries"],
         f"p99 < {TARGET_LAG_P99_MS:.0f} ms: {verdict(lag_ok)}"],
        [f"full speed: {full['tps']:,.0f}/s done", full["lag_p50_ms"], full["lag_p99_ms"], full["lag_max_ms"],
         full["entries"], "-"],
    ]  # fmt: skip
    print()
    print(format_table(["2. sync lag (Redis commit -> PostgreSQL)", "p50 ms", "p99 ms", "max ms", "entries",
                        "target"], rows))  # fmt: skip
    print(
        f"   the commit watch's longest pause between two polls: {paced['watch_longest_gap_ms']:.0f} ms at "
        f"{LAG_SHARE:.0%}, {full['watch_longest_gap_ms']:.0f} ms at full speed (a lag up to it may be the watch's)"
    )
    print(f"   before: {BEFORE['lag']}")
    d, sql = out["drain"], out["sql_single"]
    on, off, other = d["on"], d["off"], d["on_other"]
    size = d["batch_size"]
    rows = [
        [f"read-ahead on, batches of {size:,} (as shipped)", on["per_s"], on["worker_us"], on["pg_us"], on["entries"],
         on["batches"]],
        ["read-ahead off (baseline, same run)", off["per_s"], off["worker_us"], off["pg_us"], off["entries"],
         off["batches"]],
        [f"read-ahead on, batches of {OTHER_BATCH:,}", other["per_s"], other["worker_us"], other["pg_us"],
         other["entries"], other["batches"]],
    ]  # fmt: skip
    print()
    print(format_table(["3. drain, modes in turn", "entries/s", "worker us/entry", "PG us/entry", "entries",
                        "batches"], rows))  # fmt: skip
    print(f"   as shipped vs read-ahead off: {on['per_s'] / off['per_s']:.2f}x; target >= {TARGET_DRAIN:,.0f} "
          f"entries/s: {verdict(on['per_s'] >= TARGET_DRAIN)}; with batches of {OTHER_BATCH:,}: "
          f"{verdict(other['per_s'] >= TARGET_DRAIN)}; before: {BEFORE['drain']}")  # fmt: skip
    print(f"   backlog {d['entries']:,} entries; sql mode transfer() {sql['tps']:,.0f}/s (p99 {sql['p99_ms']:.1f} ms)")
    print()
    print(f"ratio hybrid/redis transfers/s: {h['tps'] / r['tps']:.2f}")
    print(f"ratio hybrid/redis hot-path CPU per transfer: {hot_ratio:.2f}")
    print(f"ratio drain/sql-transfer entries/s: {d['entries_per_s'] / sql['tps']:.2f}")
    checks = ("hybrid_reconcile_ok", "hybrid_verify_ok", "drain_reconcile_ok")
    synced = h["drained"] and paced["drained"] and full["drained"] and d["drained"]
    ok = all(out[name] for name in checks) and synced and not paced["unseen"] and not full["unseen"]
    print("stores agree afterwards: " + ("yes" if ok else "NO"))
    return bool(ok)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--shared-redis", action="store_true", help=f"use {REDIS} instead of a private server")
    parser.add_argument("--worker-command", choices=("sync", "worker"), default="sync", help="how the sync runs")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if warning := busy_warning():
        print(warning)
    private = not args.shared_redis and shutil.which("redis-server") is not None
    out: dict[str, Any] = {
        "plan": asdict(plan), "quick": args.quick, "environment": environment(), "private_redis": private,
        "worker_command": args.worker_command,
    }  # fmt: skip
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"tb-bench-hybrid-worker-{os.getpid()}.log"
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(private_redis()) if private else REDIS
        run = Run("bench_hy_" + secrets.token_hex(4), "bhy" + secrets.token_hex(4), url)
        try:
            await online(plan, run, args.worker_command, out, log)
            await drain(plan, run, out)
        finally:
            await cleanup(run)
    ok = report(out)
    if ok:
        log.unlink(missing_ok=True)
    else:
        print(f"the worker process's log: {log}")
    if args.json:
        write_json(args.json, out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
