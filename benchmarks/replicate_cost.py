"""PostgreSQL's CPU per replicated journal entry: what ``tb_replicate`` costs the server while the sync worker
drains a backlog, beside a plain COPY of the same rows measured in the same run.

    .venv/bin/python benchmarks/replicate_cost.py [--quick] [--entries N] [--batches 20,100,1000] [--rounds 3]
                                                   [--json out.json]

One ``SyncWorker`` runs in this process throughout, its PostgreSQL connection opened on the new, empty schema (as a
deployed worker's is: PL/pgSQL keeps the plans it makes on its first calls for the life of the connection). It
syncs the funding of 10,000 accounts, then for each round and batch size in turn: N transfers between random pairs
of them written into Redis with the worker idle, then drained in batches of that size (as shipped: read-ahead on).
Measured: the CPU of the PostgreSQL backends serving this process (found by its sockets' ports, as
``hybrid_sync.py`` does) per entry, and entries/s. Baseline: the same rows read back from ``tb_transactions`` and
sent with asyncpg's ``copy_records_to_table``, one transaction per batch of the same size, into a table with
``tb_transactions``' columns and indexes: the journal rows alone, without the balances. Ratio: the sync's backend
CPU per entry over the COPY's. Small batches are what a caught-up worker sends (the sync-lag case), large ones what
it sends behind a backlog. The median round of each figure is reported; ``--quick``: one small round (a smoke
test, not a measurement). CPU comes from /proc in 10 ms ticks: keep N x cost per entry well above that.

Uses the test services (PostgreSQL 127.0.0.1:5432 database ``test``, Redis 127.0.0.1:6379) under a unique
schema / key prefix, removed at the end. The exit status is 0 unless the stores disagree afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import asyncpg

from _common import (
    busy_warning,
    delete_keys,
    drop_schema,
    environment,
    format_table,
    percentile,
    process_cpu_seconds,
    socket_ports,
    write_json,
)
from tokenbank import Settings, TokenBank, TransferRequest
from tokenbank.storage.hybrid import stream
from tokenbank.storage.hybrid.backend import HybridStorage
from tokenbank.storage.hybrid.reconcile import reconcile
from tokenbank.storage.hybrid.status import SyncOptions
from tokenbank.storage.hybrid.worker import SyncWorker

DSN = os.environ.get("TOKENBANK_BENCH_DSN", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("TOKENBANK_BENCH_REDIS", "redis://127.0.0.1:6379/0")
WRITE_CHUNK = 1000
COLUMNS = (
    "seq", "id", "token", "type", "from_user_id", "to_user_id", "amount", "from_balance_after", "to_balance_after",
    "created_at", "metadata", "idempotency_key", "request_hash", "reason", "hold_id", "reverses_id", "hash",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Plan:
    entries: int
    batches: tuple[int, ...]
    rounds: int
    accounts: int


FULL = Plan(entries=10_000, batches=(20, 100, 1000), rounds=3, accounts=10_000)
QUICK = Plan(entries=5_000, batches=(20, 1000), rounds=1, accounts=500)  # enough work for a few CPU ticks


async def backends_cpu(admin: asyncpg.Connection) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving this process, but for ``admin``'s own."""
    ports = sorted(socket_ports(os.getpid()))
    rows = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[])", ports)
    pids = [row["pid"] for row in rows if row["pid"] != admin.get_server_pid()]
    return {pid: process_cpu_seconds(pid) for pid in pids}


async def write_backlog(bank: TokenBank, accounts: list[str], count: int, rng: random.Random) -> None:
    written = 0
    while written < count:
        size = min(WRITE_CHUNK, count - written)
        pairs = [rng.sample(accounts, 2) for _ in range(size)]
        results = await bank.transfer_many([TransferRequest(a, b, 1) for a, b in pairs])
        assert all(r.ok for r in results)
        written += size


async def drain(worker: SyncWorker, store: HybridStorage, admin: asyncpg.Connection, batch: int) -> dict[str, Any]:
    """``worker`` drains the backlog in batches of ``batch``: PostgreSQL CPU and wall time of the drain."""
    backlog = (await stream.read_backlog(store.redis.client, store.redis.keys)).entries
    worker.options = replace(worker.options, batch_size=batch)
    before, t0 = await backends_cpu(admin), time.perf_counter()
    entries = calls = 0
    while entries < backlog:  # a step past the end would wait for new entries
        entries, calls = entries + await worker.step(), calls + 1
    seconds = time.perf_counter() - t0
    after = await backends_cpu(admin)
    backend = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
    return {"entries": entries, "calls": calls, "seconds": seconds, "per_s": entries / seconds,
            "pg_us": backend / max(entries, 1) * 1e6}  # fmt: skip


async def copy_baseline(admin: asyncpg.Connection, token: str, after_seq: int, batch: int) -> dict[str, Any]:
    """The rows the drain just wrote, copied again into ``raw_tx`` (same columns and indexes), batch by batch."""
    rows = await admin.fetch(
        f"SELECT {', '.join(COLUMNS)} FROM tb_transactions WHERE token = $1 AND seq > $2 ORDER BY seq",
        token, after_seq,
    )  # fmt: skip
    records = [tuple(row.values()) for row in rows]
    pid = admin.get_server_pid()
    cpu, t0 = process_cpu_seconds(pid), time.perf_counter()
    for start in range(0, len(records), batch):
        await admin.copy_records_to_table("raw_tx", records=records[start : start + batch], columns=COLUMNS)
    seconds, cpu = time.perf_counter() - t0, process_cpu_seconds(pid) - cpu
    return {"entries": len(records), "seconds": seconds, "per_s": len(records) / seconds,
            "pg_us": cpu / len(records) * 1e6}  # fmt: skip


async def measure(plan: Plan, schema: str, prefix: str, out: dict[str, Any]) -> None:
    settings = Settings.load(
        storage_mode="hybrid", database_url=DSN, database_schema=schema, redis_url=REDIS, key_prefix=prefix,
        symbol="RC", initial_supply=10**12, decimals=0, hold_sweep_interval=0, background="none",
    )  # fmt: skip
    accounts = [f"c{i:06d}" for i in range(plan.accounts)]
    rng = random.Random(5)
    admin = await asyncpg.connect(DSN.replace("+asyncpg", ""), server_settings={"search_path": schema})
    try:
        async with TokenBank(settings) as bank:
            store = bank.storage
            assert isinstance(store, HybridStorage)
            await admin.execute("CREATE TABLE raw_tx (LIKE tb_transactions INCLUDING DEFAULTS INCLUDING INDEXES)")
            worker = SyncWorker(store.redis, store.sql, SyncOptions(consumer="bench-cost"))
            try:
                await worker.prepare()
                await drain(worker, store, admin, 1)  # the initial supply: the worker connects on the empty schema
                for start in range(0, len(accounts), WRITE_CHUNK):
                    funding = [TransferRequest("treasury", a, 10**6) for a in accounts[start : start + WRITE_CHUNK]]
                    assert all(r.ok for r in await bank.transfer_many(funding))
                await drain(worker, store, admin, max(plan.batches))
                runs: dict[int, list[dict[str, Any]]] = {batch: [] for batch in plan.batches}
                for _ in range(plan.rounds):
                    for batch in plan.batches:
                        top = int(await admin.fetchval("SELECT coalesce(max(seq), 0) FROM tb_transactions"))
                        await write_backlog(bank, accounts, plan.entries, rng)
                        sync = await drain(worker, store, admin, batch)
                        raw = await copy_baseline(admin, store.token, top, batch)
                        runs[batch].append({"sync": sync, "copy": raw})
            finally:
                await worker.close()
            out["drained"] = await stream.wait_drained(store.redis.client, store.redis.keys, 10)
            out["reconcile_ok"] = (await reconcile(store)).ok
            out["runs"] = {str(batch): cells for batch, cells in runs.items()}
            out["medians"] = {str(batch): medians(cells) for batch, cells in runs.items()}
    finally:
        await admin.close()


def medians(cells: list[dict[str, Any]]) -> dict[str, float]:
    figures = {f"{side}_{name}": percentile([cell[side][name] for cell in cells], 50)
               for side in ("sync", "copy") for name in ("pg_us", "per_s")}  # fmt: skip
    figures["entries_per_call"] = cells[0]["sync"]["entries"] / cells[0]["sync"]["calls"]
    return figures


async def cleanup(schema: str, prefix: str) -> None:
    await drop_schema(DSN.replace("+asyncpg", ""), schema)
    await delete_keys(REDIS, "{" + prefix + ":*")


def report(plan: Plan, out: dict[str, Any]) -> bool:
    """Print each batch size's figures beside the COPY baseline and their ratio; True when the stores agree."""
    rows = []
    for batch in plan.batches:
        m = out["medians"][str(batch)]
        rows.append([f"batches of {batch:,}", m["sync_pg_us"], m["copy_pg_us"], m["sync_pg_us"] / m["copy_pg_us"],
                     m["sync_per_s"], m["copy_per_s"]])  # fmt: skip
    print(format_table(["PostgreSQL backend CPU per entry", "sync us", "COPY us", "ratio", "sync entries/s",
                        "COPY entries/s"], rows))  # fmt: skip
    print(f"{plan.entries:,} transfers per cell among {plan.accounts:,} accounts, {plan.rounds} round(s), medians")
    for batch in plan.batches:
        ratio = out["medians"][str(batch)]["sync_pg_us"] / out["medians"][str(batch)]["copy_pg_us"]
        print(f"ratio sync/COPY PostgreSQL CPU per entry, batches of {batch:,}: {ratio:.2f}")
    ok = bool(out["drained"] and out["reconcile_ok"])
    print("stores agree afterwards: " + ("yes" if ok else "NO"))
    return ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one small round, for a smoke test")
    parser.add_argument("--entries", type=int, help="transfers per cell")
    parser.add_argument("--batches", help="batch sizes, comma-separated")
    parser.add_argument("--rounds", type=int, help="rounds (each batch size once per round)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    batches = tuple(int(b) for b in args.batches.split(",")) if args.batches else plan.batches
    plan = Plan(args.entries or plan.entries, batches, args.rounds or plan.rounds, plan.accounts)
    if warning := busy_warning():
        print(warning)
    out: dict[str, Any] = {"plan": asdict(plan), "environment": environment()}
    schema, prefix = "bench_rc_" + secrets.token_hex(4), "brc" + secrets.token_hex(4)
    try:
        await measure(plan, schema, prefix, out)
    finally:
        await cleanup(schema, prefix)
    ok = report(plan, out)
    if args.json:
        write_json(args.json, out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
