"""Read replicas: the write rate on the primary while a read load (history + leaderboard) is served by a streaming
replica, beside the same read load served by the primary itself, measured in one run.

    .venv/bin/python benchmarks/replica_reads.py [--quick] [--json out.json]
    .venv/bin/python benchmarks/replica_reads.py --primary-url postgresql+asyncpg://... --replica-url ...

1. Writes alone: ``bank.transfer()`` between random funded accounts from 32 tasks; transfers/s.
2. The same writes while another process (a bank that never writes) reads history pages and the top-50 leaderboard
   from 16 tasks, its bank configured with ``DATABASE_READ_URL``: the replica serves every read.
3. The same again with the readers' bank on the primary only (the in-run baseline).
   Our figure: the write rate of 2; baseline: the write rate of 3; ratio 2/3 (and each against 1).
4. Read-your-writes: one bank alternating a transfer and a history read of the account it just wrote, with the
   replica (each read first waits for the replica to replay the write, else the primary answers) and without one;
   p50/p99 of the pair and how the replica reads were served.

Without URLs it builds its own primary and streaming replica on spare ports (``initdb``/``pg_basebackup`` from
/usr/lib/postgresql, run as the ``postgres`` user when root; see tests/replica/cluster.py) and removes them at the
end. Both servers then share this machine's CPUs with the load generators, which is not how a replica is deployed:
the figures show what a replica costs and saves here, not what a separate replica host would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from _common import LoadResult, busy_warning, environment, format_table, percentile, run_closed_loop, write_json
from tokenbank import Settings, TokenBank, TransferRequest

ROOT = Path(__file__).resolve().parents[1]
WRITE_TASKS = 32
READ_TASKS = 16
TOKEN = "RBENCH"


@dataclass(frozen=True, slots=True)
class Plan:
    accounts: int
    seconds: float
    warmup: float
    pairs: int


FULL = Plan(accounts=2000, seconds=10.0, warmup=1.0, pairs=300)
QUICK = Plan(accounts=200, seconds=1.0, warmup=0.2, pairs=20)


@dataclass(frozen=True, slots=True)
class Target:
    primary_url: str
    replica_url: str
    schema: str

    def settings(self, *, replica: bool, pool_size: int = 10) -> Settings:
        return Settings.load(
            database_url=self.primary_url,
            database_read_url=self.replica_url if replica else None,
            database_schema=self.schema,
            symbol=TOKEN,
            decimals=0,
            initial_supply=Decimal(10**12),
            pool_size=pool_size,
            hold_sweep_interval=0,
        )


def account(n: int) -> str:
    return f"u{n}"


# the cluster -------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def own_cluster() -> Iterator[tuple[str, str]]:
    """A primary and its streaming replica of this run's own (tests/replica/cluster.py), removed at the end."""
    sys.path.insert(0, str(ROOT))
    from tests.replica.cluster import ReplicatedCluster, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL server binaries under /usr/lib/postgresql: pass --primary-url/--replica-url")
    cluster = ReplicatedCluster(bin_dir)
    try:
        cluster.start()
        yield cluster.primary.url, cluster.replica.url
    finally:
        cluster.close()


async def drop_schema(target: Target) -> None:
    conn = await asyncpg.connect(target.primary_url.replace("+asyncpg", ""), timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{target.schema}" CASCADE')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[TokenBank]:
    bank = TokenBank(settings)
    await bank.open()
    try:
        yield bank
    finally:
        await bank.close()


async def fund(bank: TokenBank, accounts: int) -> None:
    for start in range(1, accounts + 1, 500):
        requests = [TransferRequest("treasury", account(n), 1000) for n in range(start, min(start + 500, accounts + 1))]
        results = await bank.transfer_many(requests)
        assert all(result.ok for result in results)


# the loads ---------------------------------------------------------------------------------------------------
async def write_load(bank: TokenBank, plan: Plan) -> LoadResult:
    async def transfer() -> None:
        a, b = random.sample(range(1, plan.accounts + 1), 2)
        await bank.transfer(account(a), account(b), 1)

    return await run_closed_loop(transfer, WRITE_TASKS, seconds=plan.seconds, warmup_seconds=plan.warmup)


async def read_load(bank: TokenBank, accounts: int, seconds: float) -> LoadResult:
    turn = [0]

    async def read() -> None:
        turn[0] += 1
        if turn[0] % 2:
            await bank.transactions.get_transaction_history(account(random.randint(1, accounts)), limit=20)
        else:
            await bank.get_top_holders(limit=50)

    return await run_closed_loop(read, READ_TASKS, seconds=seconds)


async def reader_main(config: dict[str, Any]) -> None:
    """The read load in its own process (so its client CPU is not the writer's): prints one JSON line."""
    target = Target(config["primary_url"], config["replica_url"], config["schema"])
    async with opened(target.settings(replica=config["replica"])) as bank:
        await bank.get_top_holders(limit=50)  # connect both pools before the clock starts
        print("ready", flush=True)
        result = await read_load(bank, config["accounts"], config["seconds"])
        store = bank.storage
        replica = getattr(store, "replica", None)
        served = replica.stats.reads if replica is not None else 0
    print(json.dumps({**result.as_dict(), "replica_reads": served}), flush=True)


async def writes_under_reads(
    target: Target, writer: TokenBank, plan: Plan, replica: bool
) -> tuple[LoadResult, dict[str, Any]]:
    config = {
        "primary_url": target.primary_url, "replica_url": target.replica_url, "schema": target.schema,
        "replica": replica, "accounts": plan.accounts, "seconds": plan.seconds + plan.warmup + 0.5,
    }  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--reader", json.dumps(config), stdout=subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert line.strip() == b"ready", line
    writes = await write_load(writer, plan)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, out
    return writes, json.loads(out.decode().strip().splitlines()[-1])


async def write_then_read(bank: TokenBank, plan: Plan) -> dict[str, Any]:
    """A transfer, then the history of the account it credited (which must show it), ``pairs`` times."""
    latencies = []
    for _ in range(plan.pairs):
        a, b = random.sample(range(1, plan.accounts + 1), 2)
        started = time.perf_counter()
        tx = await bank.transfer(account(a), account(b), 1)
        page = await bank.transactions.get_transaction_history(account(b), limit=1)
        latencies.append(time.perf_counter() - started)
        assert page.items[0].id == tx.id, "a bank read a history without its own write"
    replica = getattr(bank.storage, "replica", None)
    return {
        "pairs": plan.pairs,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "stats": asdict(replica.stats) if replica is not None else None,
    }


# the run -----------------------------------------------------------------------------------------------------
async def run(target: Target, plan: Plan) -> dict[str, Any]:
    async with opened(target.settings(replica=False, pool_size=WRITE_TASKS)) as writer:
        await fund(writer, plan.accounts)
        alone = await write_load(writer, plan)
        on_replica, reads_replica = await writes_under_reads(target, writer, plan, replica=True)
        on_primary, reads_primary = await writes_under_reads(target, writer, plan, replica=False)
        plain = await write_then_read(writer, plan)
        async with opened(target.settings(replica=True)) as own:
            with_replica = await write_then_read(own, plan)
        report = await writer.verify()
    return {
        "writes_alone": alone.as_dict(),
        "writes_reads_on_replica": on_replica.as_dict(),
        "reads_on_replica": reads_replica,
        "writes_reads_on_primary": on_primary.as_dict(),
        "reads_on_primary": reads_primary,
        "write_then_read_primary_only": plain,
        "write_then_read_with_replica": with_replica,
        "ratio_replica_vs_primary_reads": on_replica.tps / on_primary.tps if on_primary.tps else None,
        "ratio_replica_reads_vs_alone": on_replica.tps / alone.tps if alone.tps else None,
        "ratio_primary_reads_vs_alone": on_primary.tps / alone.tps if alone.tps else None,
        "verify_problems": [] if report.ok else [str(report)],
    }


def print_report(results: dict[str, Any]) -> None:
    rows = [
        ["writes alone", results["writes_alone"]["tps"], None, None],
        [
            "writes + reads on the replica",
            results["writes_reads_on_replica"]["tps"],
            results["reads_on_replica"]["tps"],
            results["reads_on_replica"]["replica_reads"],
        ],
        [
            "writes + reads on the primary",
            results["writes_reads_on_primary"]["tps"],
            results["reads_on_primary"]["tps"],
            results["reads_on_primary"]["replica_reads"],
        ],
    ]
    print(format_table(["load", "transfers/s", "reads/s", "reads served by replica"], rows))
    print(
        "ratio write rate, reads on replica / reads on primary: "
        f"{results['ratio_replica_vs_primary_reads']:.2f}x "
        f"(ours {results['writes_reads_on_replica']['tps']:,.0f}/s, "
        f"baseline {results['writes_reads_on_primary']['tps']:,.0f}/s)"
    )
    print(
        f"ratio write rate vs writes alone: reads on replica {results['ratio_replica_reads_vs_alone']:.2f}x, "
        f"reads on primary {results['ratio_primary_reads_vs_alone']:.2f}x"
    )
    plain, replica = results["write_then_read_primary_only"], results["write_then_read_with_replica"]
    print(
        f"write then own history read: with replica p50 {replica['p50_ms']:.2f} ms p99 {replica['p99_ms']:.2f} ms, "
        f"primary only p50 {plain['p50_ms']:.2f} ms p99 {plain['p99_ms']:.2f} ms; "
        f"ratio p50 {replica['p50_ms'] / plain['p50_ms']:.2f}x; served {replica['stats']}"
    )
    print("verify: ok" if not results["verify_problems"] else f"verify: FAILED {results['verify_problems']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small and short: a smoke run")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--primary-url", help="an existing primary (postgresql+asyncpg://...)")
    parser.add_argument("--replica-url", help="its streaming replica")
    parser.add_argument("--reader", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reader:
        asyncio.run(reader_main(json.loads(args.reader)))
        return 0
    if bool(args.primary_url) != bool(args.replica_url):
        parser.error("give both --primary-url and --replica-url, or neither")
    plan = QUICK if args.quick else FULL
    if warning := busy_warning():
        print(warning)
    cluster = contextlib.nullcontext((args.primary_url, args.replica_url)) if args.primary_url else own_cluster()
    with cluster as (primary_url, replica_url):
        target = Target(primary_url, replica_url, f"tb_rbench_{os.getpid()}_{secrets.token_hex(3)}")
        try:
            results = asyncio.run(run(target, plan))
        finally:
            asyncio.run(drop_schema(target))
    print_report(results)
    if args.json:
        write_json(args.json, {"environment": environment(), "plan": asdict(plan), "results": results})
    return 0 if not results["verify_problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
