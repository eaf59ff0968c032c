"""Latency at low load on every store: one task, one transfer at a time, batching on vs off.

    .venv/bin/python benchmarks/low_load.py [--quick] [--json out.json] [--seconds S] [--backends sqlite,postgres,redis]

Natural batching must not make a lone call wait: with one task there is never a call in flight to batch with,
so ``transfer()`` should cost the same with ``TOKEN_BATCH_WRITES`` on (the library's default) as off (the
unbatched path, the baseline measured in the same run). Each store gets a fresh ledger of its own — SQLite in a
temporary file, PostgreSQL in a schema of this run (dropped at the end), Redis under a key prefix of this run
(deleted at the end) — and the two settings alternate for ``--rounds`` rounds; the median round is reported.
Target: p50 with batching on <= 1.2x p50 with batching off. Reported, never asserted: the exit status is 0
unless something failed or a ledger does not verify.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import LoadResult, busy_warning, environment, format_table, median_run, run_closed_loop, write_json
from tokenbank import Settings, TokenBank, TransferRequest

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
ACCOUNTS = 1_000
TARGET = 1.2


@dataclass(frozen=True, slots=True)
class Store:
    """One backend: its settings for this run, and how to remove what the run left there."""

    name: str
    options: dict[str, Any]
    cleanup: Callable[[], Any]


@contextlib.asynccontextmanager
async def store(name: str, folder: Path) -> AsyncIterator[Store]:
    tag = "ll" + secrets.token_hex(4)
    if name == "sqlite":
        yield Store(name, {"database_url": f"sqlite+aiosqlite:///{folder / 'low_load.db'}"}, lambda: None)
    elif name == "postgres":
        import asyncpg

        async def drop_schema() -> None:
            conn = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""))
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{tag}" CASCADE')
            finally:
                await conn.close()

        try:
            yield Store(name, {"database_url": POSTGRES_URL, "database_schema": tag}, drop_schema)
        finally:
            await drop_schema()
    else:
        from redis.asyncio import Redis

        async def delete_keys() -> None:
            client = Redis.from_url(REDIS_URL)
            try:
                keys = [key async for key in client.scan_iter(match="{" + tag + ":*", count=10_000)]
                for start in range(0, len(keys), 10_000):
                    await client.unlink(*keys[start : start + 10_000])
            finally:
                await client.aclose()

        try:
            yield Store(name, {"storage_mode": "redis", "redis_url": REDIS_URL, "key_prefix": tag}, delete_keys)
        finally:
            await delete_keys()


def settings(s: Store, batch_writes: bool) -> Settings:
    return Settings(
        **s.options, symbol="LOW", decimals=0, initial_supply=10**12, hold_sweep_interval=0, batch_writes=batch_writes
    )


async def one_at_a_time(bank: TokenBank, seconds: float) -> LoadResult:
    async def transfer() -> None:
        sender, receiver = random.sample(range(ACCOUNTS), 2)
        await bank.transfer(f"u{sender}", f"u{receiver}", 1)

    return await run_closed_loop(transfer, 1, seconds=seconds, warmup_seconds=min(0.5, seconds / 4))


@dataclass(frozen=True, slots=True)
class Result:
    store: str
    on: LoadResult
    off: LoadResult

    @property
    def ratio(self) -> float:
        return self.on.p50_ms / self.off.p50_ms

    def as_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "batching_on": self.on.as_dict(),
            "batching_off": self.off.as_dict(),
            "ratio_p50": round(self.ratio, 3),
            "target": TARGET,
            "met": self.ratio <= TARGET,
        }


async def measure(name: str, seconds: float, rounds: int) -> tuple[Result, bool]:
    with tempfile.TemporaryDirectory(prefix="tb-low-load-") as tmp:
        async with store(name, Path(tmp)) as s:
            async with TokenBank(settings(s, True)) as bank:
                funding = [TransferRequest("treasury", f"u{n}", 10**6) for n in range(ACCOUNTS)]
                if not all(r.ok for r in await bank.transfer_many(funding)):
                    raise RuntimeError(f"funding the {name} ledger failed")
            runs: dict[bool, list[LoadResult]] = {True: [], False: []}
            for _ in range(rounds):
                for batch_writes in (False, True):
                    async with TokenBank(settings(s, batch_writes)) as bank:
                        runs[batch_writes].append(await one_at_a_time(bank, seconds))
            async with TokenBank(settings(s, True)) as bank:
                ok = (await bank.verify()).ok
    return Result(name, median_run(runs[True]), median_run(runs[False])), ok


async def run(backends: list[str], seconds: float, rounds: int) -> dict[str, Any]:
    info = environment()
    if warning := busy_warning():
        print(warning)
    results, verified = [], {}
    for name in backends:
        print(f"{name} ...", file=sys.stderr, flush=True)
        result, ok = await measure(name, seconds, rounds)
        results.append(result)
        verified[name] = ok
    rows = [
        [r.store, r.on.count, r.on.p50_ms, r.on.p99_ms, r.off.count, r.off.p50_ms, r.off.p99_ms, r.ratio]
        for r in results
    ]
    headers = ["store", "calls on", "p50 ms on", "p99 ms on", "calls off", "p50 ms off", "p99 ms off", "ratio p50"]
    print(f"one task, one transfer() at a time, {seconds:g} s per run, median of {rounds} rounds")
    print(format_table(headers, rows))
    for r in results:
        verdict = "met" if r.ratio <= TARGET else "NOT MET"
        print(f"ratio low-load p50 batching on/off {r.store}: {r.ratio:.2f}  [target <= {TARGET}x: {verdict}]")
    print("verify: " + ("ok" if all(verified.values()) else f"FAILED {verified}"))
    return {
        "benchmark": "low_load",
        "environment": info,
        "seconds": seconds,
        "rounds": rounds,
        "results": [r.as_dict() for r in results],
        "verified": verified,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="0.3 s per run, 1 round (a smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--seconds", type=float, help="seconds per measured run (default 3; 0.3 with --quick)")
    parser.add_argument("--rounds", type=int, help="rounds of (off, on) runs (default 3; 1 with --quick)")
    parser.add_argument("--backends", default="sqlite,postgres,redis", help="comma-separated stores to measure")
    args = parser.parse_args(argv)
    seconds = args.seconds or (0.3 if args.quick else 3.0)
    rounds = args.rounds or (1 if args.quick else 3)
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = set(backends) - {"sqlite", "postgres", "redis"}
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    results = asyncio.run(run(backends, seconds, rounds))
    if args.json:
        write_json(args.json, results)
    return 0 if all(results["verified"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
