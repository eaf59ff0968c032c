"""Redis transfers: tokenbank vs plain redis-py scripts vs redis-benchmark, side by side in one run.

    .venv/bin/python benchmarks/redis_transfers.py [--quick] [--json out.json] [--accounts N] [--seconds S]
                                                   [--redis-url redis://127.0.0.1:6379/0 | --private-redis]

Everything lives under one unique key prefix of a (possibly shared)
Redis and is deleted at the end, also on error: token BENCH in ``redis`` mode with N accounts (1,000,000;
5,000 with --quick) funded by ``transfer_many`` batches of 1,000 from the treasury, and beside it the seed's
layout with the same ids and balances (a ``balance:<id>`` string per account, a ``balances`` sorted set with
score = balance, a ``transactions`` stream). Account ids are 12-digit strings (``000000000000`` ...), the form
``redis-benchmark -r`` gives ``__rand_int__``, so every client works on the same accounts.

Measured one after the other, never two clients at once (client and server share the machine's 2 cores):
1. memory per account: INFO used_memory before/after the funding, and MEMORY USAGE of each kind of key;
2. read latency, one call at a time: ``get_top_holders(100)`` and a 50-row history page, vs plain redis-py;
3. ``transfer()`` (uniform random accounts) at 1, 50 and 200 tasks with batching on and off, vs plain redis-py
   (hiredis) EVALSHA of a minimal transfer script and of the seed-style script at the same concurrency;
   ``transfer_many`` x1,000 vs redis-py pipelines of 1,000; redis-benchmark on the seed-style script;
4. Redis CPU (INFO cpu, user + sys: all the server's work) per transfer: tokenbank's batched path vs the
   seed-style script under redis-benchmark -c50 -P16, on uniform transfers and with half leaving the treasury;
5. low-load latency (one task, one call at a time): p50 with batching on vs off.
INFO cpu counts every client of the server: on a shared Redis, other clients' work lands in the Redis-CPU figures
(the run samples the server's CPU between its runs and warns); ``--private-redis`` starts a redis-server of its
own on a free loopback port for the run.
Targets are reported, never asserted: the exit status is 0 unless something failed or the ledger does not verify.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from _common import LoadResult, Operation, busy_warning, environment, format_table, run_closed_loop, write_json
from tokenbank import Settings, TokenBank, TokenBankError, TransferRequest
from tokenbank.storage.redis.keys import TokenKeys
from tokenbank.storage.redis.scripts import source

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SYMBOL = "BENCH"
TREASURY = "treasury"
PER_ACCOUNT = 1_000
"""Each account's starting balance: far more than a run's amount-1 transfers can take from one account."""
TREASURY_RESERVE = 10**12
FUND_BATCH = 1_000
BATCH_SIZE = 1_000
CONCURRENCY = (1, 50, 200)
SEED_TASKS = 50  # target: tokenbank at 200 tasks against the seed-style script at 50
BENCH_CLIENTS = 50
TREASURY_SHARE = 0.5
MEMORY_SAMPLE = 1_000
BUSY_REDIS = 0.02  # Redis CPU seconds per second between runs above which other clients spoil the CPU figures

TARGET_MINIMAL = 0.7  # target: tokenbank transfer() / minimal script, every concurrency
TARGET_SEED_CLIENT = 1.3  # target: tokenbank 200 tasks / seed-style redis-py 50 tasks
TARGET_CPU_UNIFORM = 1.5  # target: transfers per Redis-CPU-second, tokenbank / seed-style
TARGET_CPU_TREASURY = 2.5
TARGET_LOW_LOAD = 1.2  # p50 batching on / off, one task
TARGET_MEMORY = 200.0  # bytes per account, balance + leaderboard
TARGET_TOP_P99_MS = 2.0

MINIMAL_LUA = """
-- minimal transfer. KEYS: 1 sender balance, 2 receiver balance. ARGV: 1 amount. Returns 1, or 0 if not enough.
local amount = tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') < amount then return 0 end
redis.call('DECRBY', KEYS[1], amount)
redis.call('INCRBY', KEYS[2], amount)
return 1
"""

SEED_LUA = """
-- the seed's transfer. KEYS: 1 sender balance, 2 receiver balance, 3 leaderboard (score = balance),
-- 4 transactions stream. ARGV: 1 amount. An account's id is the last segment of its balance key.
-- Returns 1, or 0 if not enough.
local amount = tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') < amount then return 0 end
local from_balance = redis.call('DECRBY', KEYS[1], amount)
local to_balance = redis.call('INCRBY', KEYS[2], amount)
local from_id = string.match(KEYS[1], '[^:]*$')
local to_id = string.match(KEYS[2], '[^:]*$')
redis.call('ZADD', KEYS[3], from_balance, from_id)
redis.call('ZADD', KEYS[3], to_balance, to_id)
redis.call('XADD', KEYS[4], '*', 'type', 'transfer', 'from', from_id, 'to', to_id, 'amount', ARGV[1])
return 1
"""


@dataclass(frozen=True, slots=True)
class Plan:
    accounts: int
    seconds: float  # per measured transfer run
    warmup_seconds: float  # unmeasured, before each run (also opens the pool's connections)
    read_calls: int
    batches: int  # transfer_many batches / pipelines of 1,000 per client
    bench_requests: int  # redis-benchmark -n


FULL = Plan(accounts=1_000_000, seconds=5.0, warmup_seconds=0.5, read_calls=500, batches=20, bench_requests=100_000)
QUICK = Plan(accounts=5_000, seconds=0.5, warmup_seconds=0.1, read_calls=100, batches=2, bench_requests=5_000)


def account(number: int) -> str:
    """Account ids ``000000000000`` .. : what redis-benchmark puts for ``__rand_int__`` with ``-r accounts``."""
    return f"{number:012d}"


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# the Redis environment ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SeedKeys:
    """The seed's layout under the benchmark's prefix (one hash tag, like tokenbank's keys)."""

    tag: str

    def balance(self, user: str) -> str:
        return f"{self.tag}:balance:{user}"

    @property
    def board(self) -> str:
        return f"{self.tag}:balances"

    @property
    def stream(self) -> str:
        return f"{self.tag}:transactions"


@dataclass(frozen=True, slots=True)
class Env:
    url: str
    prefix: str
    accounts: int
    admin: Redis  # setup, INFO, MEMORY USAGE and clean-up; only INFO right before and after a measured run
    keys: TokenKeys
    seed: SeedKeys
    minimal_sha: str
    seed_sha: str
    history_sha: str
    redis_version: str
    background: list[float] = field(default_factory=list)  # Redis CPU s/s while this run was idle, per sample


@contextlib.asynccontextmanager
async def bench_redis(url: str, accounts: int) -> AsyncIterator[Env]:
    """Scripts loaded, a fresh prefix; every key under it is deleted on exit, even on error or cancellation."""
    prefix = f"tbbench{os.getpid():x}{secrets.token_hex(3)}"
    admin = Redis.from_url(url, decode_responses=True)
    keys = TokenKeys.for_token(prefix, SYMBOL)
    seed = SeedKeys("{" + prefix + ":seed}")
    try:
        info = await admin.info("server")
        env = Env(
            url=url,
            prefix=prefix,
            accounts=accounts,
            admin=admin,
            keys=keys,
            seed=seed,
            minimal_sha=await admin.script_load(MINIMAL_LUA),
            seed_sha=await admin.script_load(SEED_LUA),
            history_sha=await admin.script_load(source("history.lua")),
            redis_version=str(info["redis_version"]),
        )
        yield env
    finally:
        try:
            deleted = await _delete_keys(admin, prefix, keys, seed, accounts)
            progress(f"deleted {deleted:,} keys under prefix {prefix}")
        finally:
            await admin.aclose()


async def _delete_keys(admin: Redis, prefix: str, keys: TokenKeys, seed: SeedKeys, accounts: int) -> int:
    """UNLINK every name the run may have created (no SCAN over a large keyspace), then sweep the prefix."""

    def names() -> Iterator[str]:
        yield from keys.write_keys()
        yield from (seed.board, seed.stream, seed.balance(TREASURY), keys.history(TREASURY))
        for number in range(accounts):
            yield keys.history(account(number))
            yield seed.balance(account(number))

    deleted = 0
    chunk: list[str] = []
    for name in names():
        chunk.append(name)
        if len(chunk) == 10_000:
            deleted += await admin.unlink(*chunk)
            chunk.clear()
    if chunk:
        deleted += await admin.unlink(*chunk)
    leftovers = [key async for key in admin.scan_iter(match="{" + prefix + ":*", count=10_000)]
    for start in range(0, len(leftovers), 10_000):
        deleted += await admin.unlink(*leftovers[start : start + 10_000])
    return deleted


@contextlib.asynccontextmanager
async def private_redis() -> AsyncIterator[str]:
    """A redis-server of this run's own on a free loopback port (no persistence), stopped at the end: its INFO
    cpu and commandstats then count this benchmark's work only. Yields its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("--private-redis needs redis-server on PATH")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    with tempfile.TemporaryDirectory(prefix="tb-bench-redis-") as folder:
        options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder]
        null = asyncio.subprocess.DEVNULL
        proc = await asyncio.create_subprocess_exec(exe, *options, stdout=null, stderr=null)
        try:
            probe = Redis.from_url(url)
            try:
                for _ in range(100):
                    try:
                        await probe.ping()
                        break
                    except RedisConnectionError:
                        await asyncio.sleep(0.05)
                else:
                    raise RuntimeError("the private redis-server did not answer within 5 s")
            finally:
                await probe.aclose()
            yield url
        finally:
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()


def raw_client(url: str, connections: int) -> Redis:
    """Plain redis-py asyncio (hiredis parser when installed), a blocking pool sized like the library's."""
    return Redis(
        connection_pool=BlockingConnectionPool.from_url(
            url, max_connections=connections, timeout=10, decode_responses=True
        )
    )


@contextlib.asynccontextmanager
async def open_raw(url: str, connections: int) -> AsyncIterator[Redis]:
    client = raw_client(url, connections)
    try:
        yield client
    finally:
        await client.aclose()
        await client.connection_pool.disconnect()


def bank_settings(env: Env, *, batch_writes: bool, pool_size: int) -> Settings:
    return Settings(
        storage_mode="redis",
        redis_url=env.url,
        key_prefix=env.prefix,
        symbol=SYMBOL,
        decimals=0,
        initial_supply=Decimal(TREASURY_RESERVE),
        treasury_account=TREASURY,
        pool_size=pool_size,
        hold_sweep_interval=0,
        batch_writes=batch_writes,
    )


@contextlib.asynccontextmanager
async def open_bank(env: Env, *, batch_writes: bool = True, pool_size: int = 10) -> AsyncIterator[TokenBank]:
    async with TokenBank(bank_settings(env, batch_writes=batch_writes, pool_size=pool_size)) as bank:
        yield bank


# workloads and clients ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Workload:
    """``uniform``: random distinct sender and receiver; ``treasury-50``: half the transfers leave the treasury."""

    name: str
    accounts: int
    treasury_share: float

    def pick(self) -> tuple[str, str]:
        receiver = random.randrange(self.accounts)
        if self.treasury_share and random.random() < self.treasury_share:
            return TREASURY, account(receiver)
        sender = random.randrange(self.accounts - 1)
        sender += sender >= receiver  # never the receiver
        return account(sender), account(receiver)


def bank_transfer(bank: TokenBank, workload: Workload) -> Operation:
    async def operation() -> None:
        sender, receiver = workload.pick()
        await bank.transfer(sender, receiver, 1)

    return operation


def bank_batch(bank: TokenBank, workload: Workload, size: int) -> Operation:
    async def operation() -> None:
        results = await bank.transfer_many([TransferRequest(*workload.pick(), amount=1) for _ in range(size)])
        failed = next((r for r in results if not r.ok), None)
        if failed is not None:
            raise RuntimeError(f"tokenbank batch item failed: {failed.error!r}")

    return operation


def script_call(env: Env, seed_style: bool, sender: str, receiver: str) -> tuple[str, int, list[str | int]]:
    """EVALSHA sha, numkeys, keys and args of the minimal or the seed-style script for one transfer of 1."""
    seed = env.seed
    balances = [seed.balance(sender), seed.balance(receiver)]
    if seed_style:
        return env.seed_sha, 4, [*balances, seed.board, seed.stream, 1]
    return env.minimal_sha, 2, [*balances, 1]


def script_transfer(client: Redis, env: Env, workload: Workload, *, seed_style: bool) -> Operation:
    async def operation() -> None:
        sha, numkeys, args = script_call(env, seed_style, *workload.pick())
        if await client.evalsha(sha, numkeys, *args) != 1:
            raise RuntimeError("a baseline transfer was refused (not enough balance)")

    return operation


def script_pipeline(client: Redis, env: Env, workload: Workload, size: int, *, seed_style: bool) -> Operation:
    async def operation() -> None:
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(size):
                sha, numkeys, args = script_call(env, seed_style, *workload.pick())
                pipe.evalsha(sha, numkeys, *args)
            replies = await pipe.execute()
        if any(reply != 1 for reply in replies):
            raise RuntimeError("a baseline transfer was refused (not enough balance)")

    return operation


# measuring ----------------------------------------------------------------------------------------------------
Commands = dict[str, tuple[int, int]]
"""INFO commandstats: command -> (calls, microseconds inside Redis)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    redis_cpu: float  # seconds, used_cpu_user + used_cpu_sys: every thread of the server
    commands: Commands
    client_cpu: float  # this process's CPU seconds
    at: float

    @classmethod
    async def take(cls, admin: Redis) -> Snapshot:
        cpu = await admin.info("cpu")
        stats = await admin.info("commandstats")
        commands = {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for k, v in stats.items()}
        cpu_seconds = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
        return cls(cpu_seconds, commands, time.process_time(), time.perf_counter())

    def until(self, later: Snapshot, name: str, tasks: int, load: LoadResult, client: bool) -> Measured:
        zero = (0, 0)
        commands = {
            cmd: (calls - self.commands.get(cmd, zero)[0], usec - self.commands.get(cmd, zero)[1])
            for cmd, (calls, usec) in later.commands.items()
        }
        return Measured(
            name=name,
            tasks=tasks,
            load=load,
            redis_cpu_s=later.redis_cpu - self.redis_cpu,
            client_cpu_s=later.client_cpu - self.client_cpu if client else None,
            commands={cmd: delta for cmd, delta in commands.items() if delta[0] > 0},
        )


@dataclass(frozen=True, slots=True)
class Measured:
    """One client's run: throughput and latency, and the Redis and client CPU it cost."""

    name: str
    tasks: int  # asyncio tasks, or redis-benchmark connections
    load: LoadResult
    redis_cpu_s: float  # everything the server did meanwhile, for any client
    client_cpu_s: float | None
    commands: Commands

    @property
    def transfers(self) -> int:
        return self.load.count * self.load.units_per_op

    @property
    def tps(self) -> float:
        return self.load.tps

    @property
    def redis_us(self) -> float:
        """Redis CPU microseconds per transfer."""
        return self.redis_cpu_s / self.transfers * 1e6 if self.transfers else math.nan

    @property
    def client_us(self) -> float | None:
        return None if self.client_cpu_s is None or not self.transfers else self.client_cpu_s / self.transfers * 1e6

    @property
    def per_cpu_second(self) -> float:
        """Transfers per second of Redis CPU."""
        return self.transfers / self.redis_cpu_s if self.redis_cpu_s > 0 else math.nan

    @property
    def per_call(self) -> float:
        calls = self.commands.get("evalsha", (0, 0))[0]
        return self.transfers / calls if calls else math.nan

    def row(self) -> list[object]:
        load = self.load
        return [self.name, self.tasks, self.tps, load.p50_ms, load.p99_ms, self.redis_us, self.client_us, self.per_call]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tasks": self.tasks,
            **self.load.as_dict(),
            "transfers": self.transfers,
            "redis_cpu_s": round(self.redis_cpu_s, 4),
            "redis_cpu_us_per_transfer": round(self.redis_us, 2),
            "client_cpu_us_per_transfer": None if self.client_us is None else round(self.client_us, 2),
            "transfers_per_redis_cpu_second": round(self.per_cpu_second, 1),
            "transfers_per_script_call": round(self.per_call, 2),
            "commandstats": {cmd: {"calls": calls, "usec": usec} for cmd, (calls, usec) in self.commands.items()},
        }


async def measure(
    env: Env,
    name: str,
    operation: Operation,
    tasks: int,
    *,
    seconds: float | None = None,
    count: int | None = None,
    warmup_seconds: float = 0.0,
    units_per_op: int = 1,
) -> Measured:
    """A closed-loop run after an unmeasured warm-up, with the Redis and client CPU of the measured part."""
    if warmup_seconds > 0:
        await run_closed_loop(operation, tasks, seconds=warmup_seconds)
    before = await Snapshot.take(env.admin)
    load = await run_closed_loop(operation, tasks, seconds=seconds, count=count, units_per_op=units_per_op)
    result = before.until(await Snapshot.take(env.admin), name, tasks, load, client=True)
    progress(f"  {name:<46} {tasks:>3} tasks: {result.tps:>9,.0f}/s, Redis {result.redis_us:,.1f} us/transfer")
    return result


async def redis_benchmark(
    env: Env, name: str, commands: Sequence[Sequence[str]], *, clients: int, pipeline: int, requests: int
) -> Measured:
    """redis-benchmark, one process per command side by side (clients and requests split evenly); the
    latencies are the first process's. Raises RuntimeError if a process fails or Redis answers an error."""
    url = urlsplit(env.url)
    base = ["redis-benchmark", "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 6379)]
    base += ["--dbnum", url.path.strip("/") or "0", "-r", str(env.accounts), "-P", str(pipeline), "--csv"]
    if url.password:
        base += ["-a", url.password, "--no-auth-warning"]
    per_process = requests // len(commands)
    argv = [[*base, "-c", str(clients // len(commands)), "-n", str(per_process), *cmd] for cmd in commands]
    before = await Snapshot.take(env.admin)
    pipe = asyncio.subprocess.PIPE
    procs = [await asyncio.create_subprocess_exec(*args, stdout=pipe, stderr=pipe) for args in argv]
    outputs = await asyncio.gather(*(proc.communicate() for proc in procs))
    after = await Snapshot.take(env.admin)
    for proc, (_, err) in zip(procs, outputs, strict=True):
        if proc.returncode != 0 or b"Error" in err:
            raise RuntimeError(f"redis-benchmark failed ({proc.returncode}): {err.decode(errors='replace')[:500]}")
    # CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",...
    fields = [part.strip('"') for part in outputs[0][0].decode().strip().splitlines()[-1].split('","')]
    seconds = after.at - before.at
    if len(commands) == 1:
        seconds = per_process / float(fields[1])  # redis-benchmark's own clock, without process start-up
    load = LoadResult(per_process * len(commands), seconds, p50_ms=float(fields[4]), p99_ms=float(fields[6]))
    result = before.until(after, name, clients, load, client=False)
    progress(f"  {name:<46} {clients:>3} conns: {result.tps:>9,.0f}/s, Redis {result.redis_us:,.1f} us/transfer")
    return result


async def sample_background(env: Env, seconds: float) -> float:
    """Redis CPU seconds per second while this benchmark sends nothing: housekeeping, and other clients of a
    shared server, whose work the Redis-CPU figures then include."""
    before = await Snapshot.take(env.admin)
    await asyncio.sleep(seconds)
    after = await Snapshot.take(env.admin)
    env.background.append((after.redis_cpu - before.redis_cpu) / (after.at - before.at))
    return env.background[-1]


# setup and memory ---------------------------------------------------------------------------------------------
async def fund_accounts(env: Env) -> float:
    """Every account gets PER_ACCOUNT from the treasury, by transfer_many batches of 1,000 (two in flight)."""
    started = time.perf_counter()
    starts = iter(range(0, env.accounts, FUND_BATCH))
    done = [0, 0]  # accounts funded, last reported tenth

    async with open_bank(env, pool_size=2) as bank:

        async def worker() -> None:
            for start in starts:  # shared by both workers
                stop = min(start + FUND_BATCH, env.accounts)
                batch = [TransferRequest(TREASURY, account(n), PER_ACCOUNT) for n in range(start, stop)]
                failed = next((r for r in await bank.transfer_many(batch) if not r.ok), None)
                if failed is not None:
                    raise RuntimeError(f"funding failed: {failed.error!r}")
                done[0] += stop - start
                if done[0] * 10 // env.accounts > done[1]:
                    done[1] = done[0] * 10 // env.accounts
                    progress(f"  funded {done[0]:,} accounts ({time.perf_counter() - started:.1f} s)")

        async with asyncio.TaskGroup() as group:
            for _ in range(2):
                group.create_task(worker())
    return time.perf_counter() - started


async def fund_seed_layout(env: Env) -> float:
    """The seed's keys for the same accounts and balances, written directly (the baselines' data, not timed)."""
    started = time.perf_counter()
    seed, admin = env.seed, env.admin
    await admin.set(seed.balance(TREASURY), TREASURY_RESERVE - PER_ACCOUNT * env.accounts)
    await admin.zadd(seed.board, {TREASURY: TREASURY_RESERVE - PER_ACCOUNT * env.accounts})
    step = 10_000
    for start in range(0, env.accounts, step):
        ids = [account(n) for n in range(start, min(start + step, env.accounts))]
        async with admin.pipeline(transaction=False) as pipe:
            pipe.mset({seed.balance(user): PER_ACCOUNT for user in ids})
            pipe.zadd(seed.board, dict.fromkeys(ids, PER_ACCOUNT))
            await pipe.execute()
    return time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class Memory:
    """Bytes, whole layout (divide by ``accounts`` for the per-account figures)."""

    accounts: int
    info_delta: int  # INFO used_memory after - before the funding (the token's creation included)
    balances: int  # MEMORY USAGE of the bal hash
    board: int  # ... of the leaderboard sorted set
    transactions: int  # ... of the tx hash
    stream: int
    histories: int  # the accounts' history keys, estimated from a sample (the treasury's apart)
    treasury_history: int
    seed_info_delta: int
    seed_balances: int  # the seed's balance string keys, estimated from a sample
    seed_board: int

    def per(self, value: int) -> float:
        return value / self.accounts

    @property
    def board_share(self) -> float:
        return self.per(self.balances + self.board)

    @property
    def seed_board_share(self) -> float:
        return self.per(self.seed_balances + self.seed_board)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bytes": asdict(self)}
        out["per_account"] = {k: round(self.per(v), 1) for k, v in asdict(self).items() if k != "accounts"}
        out["per_account"]["balance_plus_leaderboard"] = round(self.board_share, 1)
        out["per_account"]["seed_balance_plus_leaderboard"] = round(self.seed_board_share, 1)
        return out


async def used_memory(admin: Redis) -> int:
    return int((await admin.info("memory"))["used_memory"])


async def key_bytes(admin: Redis, keys: Sequence[str]) -> int:
    """Sum of MEMORY USAGE (every element counted: SAMPLES 0) of existing keys."""
    async with admin.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        return sum(int(size or 0) for size in await pipe.execute())


async def sampled_bytes(admin: Redis, key_of: Callable[[str], str], accounts: int) -> int:
    """MEMORY USAGE of one key per account, estimated from a random sample of accounts."""
    sample = random.sample(range(accounts), min(MEMORY_SAMPLE, accounts))
    total = await key_bytes(admin, [key_of(account(n)) for n in sample])
    return round(total / len(sample) * accounts)


async def setup(env: Env) -> tuple[float, float, Memory]:
    admin, keys, seed = env.admin, env.keys, env.seed
    before = await used_memory(admin)
    progress(f"funding {env.accounts:,} accounts through transfer_many x{FUND_BATCH:,} ...")
    fund_seconds = await fund_accounts(env)
    after = await used_memory(admin)
    token_keys = {
        name: await key_bytes(admin, [key])
        for name, key in (("bal", keys.bal), ("lb", keys.lb), ("tx", keys.tx), ("stream", keys.stream))
    }
    histories = await sampled_bytes(admin, keys.history, env.accounts)
    treasury_history = await key_bytes(admin, [keys.history(TREASURY)])
    progress("writing the seed layout for the baselines ...")
    seed_before = await used_memory(admin)
    seed_seconds = await fund_seed_layout(env)
    seed_after = await used_memory(admin)
    memory = Memory(
        accounts=env.accounts,
        info_delta=after - before,
        balances=token_keys["bal"],
        board=token_keys["lb"],
        transactions=token_keys["tx"],
        stream=token_keys["stream"],
        histories=histories,
        treasury_history=treasury_history,
        seed_info_delta=seed_after - seed_before,
        seed_balances=await sampled_bytes(admin, seed.balance, env.accounts),
        seed_board=await key_bytes(admin, [seed.board]),
    )
    return fund_seconds, seed_seconds, memory


# reads --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Reads:
    top: LoadResult
    top_raw: LoadResult
    history: LoadResult
    history_raw: LoadResult

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).as_dict() for name in ("top", "top_raw", "history", "history_raw")}


async def measure_reads(env: Env, plan: Plan) -> Reads:
    """One call at a time: tokenbank's leaderboard page and the treasury's newest 50 transactions, vs plain
    redis-py reading the seed's leaderboard and running the library's own history script."""
    timing: dict[str, Any] = {"count": plan.read_calls, "warmup_seconds": 0.05}
    async with open_bank(env, pool_size=1) as bank:

        async def top() -> None:
            if len(await bank.get_top_holders(100)) != min(100, env.accounts):
                raise RuntimeError("get_top_holders(100) returned a short page")

        async def history() -> None:
            page = await bank.transactions.get_transaction_history(TREASURY, limit=50)
            if len(page.items) != min(50, env.accounts):
                raise RuntimeError("the treasury's history page is short")

        top_load = await run_closed_loop(top, 1, **timing)
        history_load = await run_closed_loop(history, 1, **timing)

    async with open_raw(env.url, 1) as client:

        async def top_raw() -> None:
            await client.zrange(env.seed.board, 0, 99, desc=True, withscores=True)

        args = (env.history_sha, 2, env.keys.history(TREASURY), env.keys.tx, "+inf", 50, "", "", "")

        async def history_raw() -> None:
            [json.loads(row) for row in await client.evalsha(*args)]

        top_raw_load = await run_closed_loop(top_raw, 1, **timing)
        reads = Reads(top_load, top_raw_load, history_load, await run_closed_loop(history_raw, 1, **timing))
    progress(f"  get_top_holders(100) p99 {reads.top.p99_ms:.2f} ms; history page p99 {reads.history.p99_ms:.2f} ms")
    return reads


# transfers ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Cell:
    """One concurrency: tokenbank with batching on and off, and the two plain scripts."""

    tasks: int
    batched: Measured
    unbatched: Measured
    minimal: Measured
    seed: Measured

    def runs(self) -> list[Measured]:
        return [self.batched, self.unbatched, self.minimal, self.seed]


async def measure_cell(env: Env, plan: Plan, workload: Workload, tasks: int) -> Cell:
    timing: dict[str, Any] = {"seconds": plan.seconds, "warmup_seconds": plan.warmup_seconds}
    runs: list[Measured] = []
    for batch_writes in (True, False):
        async with open_bank(env, batch_writes=batch_writes, pool_size=tasks) as bank:
            name = f"tokenbank transfer(), batching {'on' if batch_writes else 'off'}"
            runs.append(await measure(env, name, bank_transfer(bank, workload), tasks, **timing))
    async with open_raw(env.url, tasks) as client:
        for seed_style in (False, True):
            name = f"redis-py {'seed-style' if seed_style else 'minimal'} script"
            operation = script_transfer(client, env, workload, seed_style=seed_style)
            runs.append(await measure(env, name, operation, tasks, **timing))
    return Cell(tasks, *runs)


async def measure_batches(env: Env, plan: Plan, workload: Workload) -> list[Measured]:
    """transfer_many x1,000 and pipelines of 1,000 EVALSHAs, one task each."""
    timing: dict[str, Any] = {"count": plan.batches, "warmup_seconds": 0.05, "units_per_op": BATCH_SIZE}
    async with open_bank(env, pool_size=1) as bank:
        runs = [
            await measure(
                env, f"tokenbank transfer_many x{BATCH_SIZE:,}", bank_batch(bank, workload, BATCH_SIZE), 1, **timing
            )
        ]
    async with open_raw(env.url, 1) as client:
        for seed_style in (False, True):
            name = f"redis-py pipeline x{BATCH_SIZE:,}, {'seed-style' if seed_style else 'minimal'} script"
            operation = script_pipeline(client, env, workload, BATCH_SIZE, seed_style=seed_style)
            runs.append(await measure(env, name, operation, 1, **timing))
    return runs


@dataclass(frozen=True, slots=True)
class Tool:
    """What redis-benchmark measured: the seed-style script (and the minimal one, for reference)."""

    minimal_p16: Measured
    seed_p16: Measured
    seed_p1: Measured
    seed_treasury_p16: Measured

    def runs(self) -> list[Measured]:
        return [self.minimal_p16, self.seed_p16, self.seed_p1, self.seed_treasury_p16]


async def measure_tool(env: Env, plan: Plan) -> Tool:
    seed, n = env.seed, plan.bench_requests
    rand = "__rand_int__"

    def command(sha: str, sender: str, seed_style: bool) -> list[str]:
        extra = [seed.board, seed.stream] if seed_style else []
        return ["EVALSHA", sha, str(2 + len(extra)), seed.balance(sender), seed.balance(rand), *extra, "1"]

    minimal = [command(env.minimal_sha, rand, False)]
    uniform = [command(env.seed_sha, rand, True)]
    treasury = [uniform[0], command(env.seed_sha, TREASURY, True)]
    return Tool(
        await redis_benchmark(
            env, "redis-benchmark minimal -P16", minimal, clients=BENCH_CLIENTS, pipeline=16, requests=n
        ),
        await redis_benchmark(
            env, "redis-benchmark seed-style -P16", uniform, clients=BENCH_CLIENTS, pipeline=16, requests=n
        ),
        await redis_benchmark(
            env, "redis-benchmark seed-style -P1", uniform, clients=BENCH_CLIENTS, pipeline=1, requests=n
        ),
        await redis_benchmark(
            env,
            "redis-benchmark seed-style -P16, treasury-50",
            treasury,
            clients=BENCH_CLIENTS,
            pipeline=16,
            requests=n,
        ),
    )


# the report ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Row:
    """One line of the summary table; one with a ``label`` also gets a ``ratio ...`` line."""

    key: str
    figure: str
    value: float
    baseline: str
    baseline_value: float | None
    target: str
    met: bool | None  # None: no target, for information
    label: str | None = None

    @property
    def ratio(self) -> float | None:
        if not self.baseline_value or math.isnan(self.baseline_value):
            return None
        return self.value / self.baseline_value

    def cells(self) -> list[object]:
        met = "-" if self.met is None else ("yes" if self.met else "NO")
        return [self.figure, self.value, self.baseline, self.baseline_value, self.ratio, self.target, met]

    def ratio_line(self) -> str:
        mark = "info" if self.met is None else f"target {self.target}: {'met' if self.met else 'NOT MET'}"
        return f"ratio {self.label}: {'-' if self.ratio is None else f'{self.ratio:.2f}'}  [{mark}]"

    def as_dict(self) -> dict[str, Any]:
        ratio = self.ratio
        return {**asdict(self), "ratio": None if ratio is None else round(ratio, 3)}


@dataclass(frozen=True, slots=True)
class Results:
    memory: Memory
    reads: Reads
    cells: list[Cell]
    treasury: tuple[Measured, Measured]  # tokenbank batched at the top concurrency, redis-py seed-style
    batches: list[Measured]
    tool: Tool | None

    def cell(self, tasks: int) -> Cell:
        return next(c for c in self.cells if c.tasks == tasks)

    def cpu_baselines(self) -> tuple[Measured, Measured, str]:
        """The seed-style runs whose Redis CPU per transfer is the server-side baseline."""
        if self.tool is not None:
            return self.tool.seed_p16, self.tool.seed_treasury_p16, f"redis-benchmark -c{BENCH_CLIENTS} -P16"
        return self.cell(SEED_TASKS).seed, self.treasury[1], f"redis-py, {SEED_TASKS} tasks"

    def runs(self) -> list[Measured]:
        runs = [run for cell in self.cells for run in cell.runs()]
        return [*runs, *self.treasury, *self.batches, *(self.tool.runs() if self.tool else [])]


def tasks_text(tasks: int) -> str:
    return f"{tasks} task" + ("s" if tasks != 1 else "")


def summary(r: Results) -> list[Row]:
    m, top, low = r.memory, max(CONCURRENCY), r.cell(min(CONCURRENCY))
    ours, seed50, treasury = r.cell(top).batched, r.cell(SEED_TASKS).seed, r.treasury[0]
    many, seed_many = r.batches[0], r.batches[-1]
    cpu_uniform, cpu_treasury, tool = r.cpu_baselines()
    rows = [
        Row("memory_balance_leaderboard", "memory B/account: balance + leaderboard", m.board_share,
            "seed: balance key + board member", m.seed_board_share, f"<= {TARGET_MEMORY:.0f} B",
            m.board_share <= TARGET_MEMORY, "memory tokenbank/seed, balance + leaderboard"),
        Row("memory_everything", "memory B/account: everything (INFO)", m.per(m.info_delta),
            "seed: INFO delta (balances + board)", m.per(m.seed_info_delta), "-", None),
        Row("top_holders_p99_ms", "get_top_holders(100) p99 ms", r.reads.top.p99_ms, "redis-py ZRANGE 0 99 REV",
            r.reads.top_raw.p99_ms, f"< {TARGET_TOP_P99_MS:.0f} ms", r.reads.top.p99_ms < TARGET_TOP_P99_MS),
        Row("history_page_p99_ms", "history page (50) p99 ms", r.reads.history.p99_ms,
            "redis-py same script + json", r.reads.history_raw.p99_ms, "-", None),
    ]  # fmt: skip
    for on in (True, False):
        for c in r.cells:
            run, text = (c.batched, "on") if on else (c.unbatched, "off")
            rows.append(
                Row(f"transfer_{c.tasks}_tasks_batching_{text}", f"transfer()/s {tasks_text(c.tasks)}, batching {text}",
                    run.tps, f"redis-py minimal, {tasks_text(c.tasks)}", c.minimal.tps,
                    f">= {TARGET_MINIMAL}x" if on else "-", run.tps >= TARGET_MINIMAL * c.minimal.tps if on else None,
                    f"tokenbank/minimal-script {tasks_text(c.tasks):>9}, batching {text}")
            )  # fmt: skip
    rows += [
        Row(f"transfer_{top}_vs_seed_{SEED_TASKS}", f"transfer()/s {top} tasks, batching on", ours.tps,
            f"redis-py seed-style, {SEED_TASKS} tasks", seed50.tps, f">= {TARGET_SEED_CLIENT}x",
            ours.tps >= TARGET_SEED_CLIENT * seed50.tps,
            f"tokenbank {top} tasks/seed-style redis-py {SEED_TASKS} tasks"),
        Row("transfer_many", f"transfer_many x{BATCH_SIZE:,}: transfers/s", many.tps,
            f"redis-py pipeline x{BATCH_SIZE:,} seed", seed_many.tps, "-", None,
            f"tokenbank transfer_many/seed-style pipeline x{BATCH_SIZE:,}"),
        Row("sustained_uniform", f"sustained/s uniform, {top} tasks", ours.tps, f"seed-style, {tool}",
            cpu_uniform.tps, "-", None),
        Row("sustained_treasury_50", f"sustained/s treasury-50, {top} tasks", treasury.tps, f"seed-style, {tool}",
            cpu_treasury.tps, "-", None),
        Row("redis_cpu_uniform", "transfers per Redis-CPU-s, uniform", ours.per_cpu_second, f"seed-style, {tool}",
            cpu_uniform.per_cpu_second, f">= {TARGET_CPU_UNIFORM}x",
            ours.per_cpu_second >= TARGET_CPU_UNIFORM * cpu_uniform.per_cpu_second,
            "Redis-CPU efficiency tokenbank/seed-style, uniform"),
        Row("redis_cpu_treasury_50", "transfers per Redis-CPU-s, treasury-50", treasury.per_cpu_second,
            f"seed-style, {tool}", cpu_treasury.per_cpu_second, f">= {TARGET_CPU_TREASURY}x",
            treasury.per_cpu_second >= TARGET_CPU_TREASURY * cpu_treasury.per_cpu_second,
            "Redis-CPU efficiency tokenbank/seed-style, treasury-50"),
        Row("redis_cpu_transfer_many", "transfers per Redis-CPU-s, transfer_many", many.per_cpu_second,
            f"seed-style, {tool}", cpu_uniform.per_cpu_second, "-", None),
        Row("low_load_p50_ms", "p50 ms, 1 task, batching on", low.batched.load.p50_ms, "tokenbank, batching off",
            low.unbatched.load.p50_ms, f"<= {TARGET_LOW_LOAD}x",
            low.batched.load.p50_ms <= TARGET_LOW_LOAD * low.unbatched.load.p50_ms, "low-load p50 batching on/off"),
    ]  # fmt: skip
    return rows


def memory_table(m: Memory) -> str:
    rows: list[list[object]] = [
        ["balance (bal hash field)", m.per(m.balances)],
        ["leaderboard member (lb)", m.per(m.board)],
        [f"balance + leaderboard (target <= {TARGET_MEMORY:.0f})", m.board_share],
        ["history index key, 1 entry", m.per(m.histories)],
        ["transaction record (tx hash field)", m.per(m.transactions)],
        ["ledger stream entry", m.per(m.stream)],
        ["treasury's history index", m.per(m.treasury_history)],
        ["sum of the above", m.per(m.balances + m.board + m.histories + m.transactions + m.stream)],
        ["everything: INFO used_memory delta", m.per(m.info_delta)],
        ["seed: balance string key", m.per(m.seed_balances)],
        ["seed: leaderboard member", m.per(m.seed_board)],
        ["seed: balance + leaderboard", m.seed_board_share],
        ["seed: INFO used_memory delta", m.per(m.seed_info_delta)],
    ]
    return format_table([f"memory per account, {m.accounts:,} accounts (MEMORY USAGE unless noted)", "bytes"], rows)


def reads_table(reads: Reads) -> str:
    rows = [
        ["get_top_holders(100)", reads.top.p50_ms, reads.top.p99_ms],
        ["  redis-py ZRANGE 0 99 REV WITHSCORES (seed board)", reads.top_raw.p50_ms, reads.top_raw.p99_ms],
        ["get_transaction_history(treasury, limit=50)", reads.history.p50_ms, reads.history.p99_ms],
        ["  redis-py EVALSHA history.lua + json.loads", reads.history_raw.p50_ms, reads.history_raw.p99_ms],
    ]
    return format_table(["read, one call at a time", "p50 ms", "p99 ms"], rows)


def runs_table(runs: Sequence[Measured]) -> str:
    headers = ["run (uniform unless noted)", "tasks", "transfers/s", "p50 ms", "p99 ms", "Redis us/tr"]
    return format_table([*headers, "client us/tr", "tr/script"], [run.row() for run in runs])


def commands_table(columns: Sequence[tuple[str, Measured]]) -> str:
    """Where Redis spends its time per transfer (INFO commandstats: wall time inside Redis, so it also counts
    time the server waited for a core): the whole EVALSHA, the commands the script calls, and the rest (Lua,
    cjson, script dispatch)."""
    runs = [run for _, run in columns]

    def per(run: Measured, cmd: str) -> tuple[float, float]:
        calls, usec = run.commands.get(cmd, (0, 0))
        return calls / run.transfers, usec / run.transfers

    def rest(run: Measured) -> list[object]:
        inner = sum(usec for cmd, (_, usec) in run.commands.items() if cmd != "evalsha") / run.transfers
        return [None, per(run, "evalsha")[1] - inner]

    used = {cmd for run in runs for cmd in run.commands if cmd != "evalsha" and per(run, cmd)[0] >= 0.05}
    order = sorted(used, key=lambda cmd: -per(runs[0], cmd)[1])
    rows: list[list[object]] = [["EVALSHA, whole script", *(v for run in runs for v in per(run, "evalsha"))]]
    rows += [[f"  {cmd.upper()}", *(v for run in runs for v in per(run, cmd))] for cmd in order]
    rows.append(["  rest: Lua, cjson, dispatch", *(v for run in runs for v in rest(run))])
    headers = ["Redis time per transfer (commandstats)"] + [h for title, _ in columns for h in (title, "us")]
    return format_table(headers, rows)


def report(r: Results, background: Sequence[float]) -> str:
    rows = summary(r)
    top, (seed_uniform, _, tool) = max(CONCURRENCY), r.cpu_baselines()
    breakdown = [
        (f"tokenbank {top} tasks: calls", r.cell(top).batched),
        ("treasury-50: calls", r.treasury[0]),
        (f"seed-style {tool}: calls", seed_uniform),
    ]
    lines = [memory_table(r.memory), "", reads_table(r.reads), "", runs_table(r.runs())]
    lines.append(
        "(tasks: asyncio tasks, or redis-benchmark connections; latency per call, per batch for x1,000 rows; Redis "
        "us/tr: Redis CPU (user+sys) per transfer; client us/tr: this process's "
        "CPU per transfer; tr/script: transfers per EVALSHA)"
    )
    samples = ", ".join(f"{value * 1000:.1f}" for value in background)
    lines.append(f"Redis CPU between the runs, while this benchmark sent nothing: {samples} ms/s")
    if max(background, default=0.0) > BUSY_REDIS:
        lines.append(
            "WARNING: other clients kept this Redis busy; the Redis-CPU and commandstats figures include their "
            "work (run with --private-redis for clean ones)"
        )
    if r.tool is None:
        lines.append("redis-benchmark not installed: the server-side baseline is the redis-py seed-style run")
    lines += ["", commands_table(breakdown), ""]
    headers = ["figure", "tokenbank", "baseline", "value", "ratio", "target", "met?"]
    lines += [format_table(headers, [row.cells() for row in rows]), ""]
    lines += [row.ratio_line() for row in rows if row.label is not None]
    targeted = [row for row in rows if row.met is not None]
    lines.append(f"targets met: {sum(bool(row.met) for row in targeted)} of {len(targeted)}")
    return "\n".join(lines)


async def verify(env: Env) -> tuple[list[str], float]:
    started = time.perf_counter()
    async with open_bank(env, pool_size=1) as bank:
        try:
            checks = (await bank.verify()).checks
        except TokenBankError as exc:
            return [f"verify() raised {type(exc).__name__}: {exc}"], time.perf_counter() - started
    return [f"{c.name}: {c.detail}" for c in checks if not c.ok], time.perf_counter() - started


async def measure_all(env: Env, plan: Plan, memory: Memory) -> Results:
    """Everything after the setup, one client at a time; the idle background is sampled between sections."""
    idle = 0.2 if plan.accounts <= QUICK.accounts else 1.0
    uniform = Workload("uniform", plan.accounts, 0.0)
    treasury = Workload("treasury-50", plan.accounts, TREASURY_SHARE)
    timing: dict[str, Any] = {"seconds": plan.seconds, "warmup_seconds": plan.warmup_seconds}
    top = max(CONCURRENCY)
    progress("reads ...")
    reads = await measure_reads(env, plan)
    cells = []
    for tasks in CONCURRENCY:
        await sample_background(env, idle)
        progress(f"transfer(), uniform, {tasks_text(tasks)} ...")
        cells.append(await measure_cell(env, plan, uniform, tasks))
    await sample_background(env, idle)
    progress("transfer(), treasury-50 ...")
    async with open_bank(env, pool_size=top) as bank:
        name = "tokenbank transfer(), batching on, treasury-50"
        ours = await measure(env, name, bank_transfer(bank, treasury), top, **timing)
    async with open_raw(env.url, SEED_TASKS) as client:
        operation = script_transfer(client, env, treasury, seed_style=True)
        theirs = await measure(env, "redis-py seed-style script, treasury-50", operation, SEED_TASKS, **timing)
    await sample_background(env, idle)
    progress("batches ...")
    batches = await measure_batches(env, plan, uniform)
    tool = None
    if shutil.which("redis-benchmark"):
        await sample_background(env, idle)
        progress("redis-benchmark ...")
        tool = await measure_tool(env, plan)
    await sample_background(env, idle)
    return Results(memory, reads, cells, (ours, theirs), batches, tool)


async def run(plan: Plan, url: str, private: bool) -> dict[str, Any]:
    task = asyncio.current_task()
    if task is not None:  # a terminated run still deletes its keys
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    started = time.perf_counter()
    env_info = environment()
    if warning := busy_warning():
        print(warning)
    async with contextlib.AsyncExitStack() as stack:
        if private:
            url = await stack.enter_async_context(private_redis())
        env = await stack.enter_async_context(bench_redis(url, plan.accounts))
        where = "a private redis-server started for this run" if private else "shared: other clients may use it"
        print(f"Redis {env.redis_version} at {urlsplit(url).netloc} ({where}), key prefix {env.prefix}")
        fund_seconds, seed_seconds, memory = await setup(env)
        print(
            f"setup: {plan.accounts:,} accounts funded by transfer_many x{FUND_BATCH:,} from the treasury in "
            f"{fund_seconds:.1f} s ({plan.accounts / fund_seconds:,.0f} transfers/s); seed layout {seed_seconds:.1f} s"
        )
        results = await measure_all(env, plan, memory)
        progress("verify() ...")
        problems, verify_seconds = await verify(env)
    print()
    print(report(results, env.background))
    print(f"verify: {'ok' if not problems else 'FAILED: ' + '; '.join(problems)} ({verify_seconds:.1f} s)")
    print(f"total run time: {time.perf_counter() - started:.1f} s")
    return {
        "benchmark": "redis_transfers",
        "environment": {**env_info, "redis": env.redis_version},
        "plan": asdict(plan),
        "setup": {"fund_seconds": round(fund_seconds, 2), "seed_layout_seconds": round(seed_seconds, 2)},
        "memory": memory.as_dict(),
        "reads": results.reads.as_dict(),
        "runs": [run.as_dict() for run in results.runs()],
        "summary": [row.as_dict() for row in summary(results)],
        "redis_cpu_between_runs_per_second": [round(value, 5) for value in env.background],
        "redis_benchmark": results.tool is not None,
        "private_redis": private,
        "verify_problems": problems,
        "verify_seconds": round(verify_seconds, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5,000 accounts, 0.5 s per run (a smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--accounts", type=int, help="funded accounts (default 1,000,000; 5,000 with --quick)")
    parser.add_argument("--seconds", type=float, help="seconds per measured transfer run (default 5; quick 0.5)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help=f"Redis URL (default {DEFAULT_REDIS_URL})")
    parser.add_argument(
        "--private-redis",
        action="store_true",
        help="start a redis-server of its own on a free loopback port instead (clean Redis-CPU figures)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.accounts is not None:
        if args.accounts < 200:
            parser.error("--accounts must be at least 200")
        plan = replace(plan, accounts=args.accounts)
    if args.seconds is not None:
        plan = replace(plan, seconds=args.seconds)
    results = asyncio.run(run(plan, args.redis_url, args.private_redis))
    if args.json:
        write_json(args.json, results)
    return 1 if results["verify_problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
