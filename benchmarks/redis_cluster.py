"""Three tokens on a 3-master Redis Cluster vs the same three tokens on one Redis, same client processes:

    .venv/bin/python benchmarks/redis_cluster.py [--quick] [--json out.json]

The benchmark starts its own servers on spare loopback ports (a 3-master cluster without replicas and one plain
redis-server, no persistence; killed and deleted at the end) and picks three token symbols whose hash tags fall on
the three masters. For each target, one client process per token (tokenbank ``transfer()``, natural batching,
``TASKS`` concurrent tasks, uniform transfers between funded accounts) runs for the same time, all three at once.

Figures, from ``INFO cpu`` (used_cpu_sys + used_cpu_user) and ``INFO commandstats`` deltas around the run:

- each master's share of the cluster's Redis CPU and of its script calls (EVALSHA), against a third;
- transfers per Redis-CPU-second, cluster (all masters summed) vs the single Redis: the ratio says what the
  cluster costs per transfer (1.0: nothing);
- transfers per second of the whole run, cluster vs single (on a 2-core machine, clients and servers share the
  cores, so this says little about a real deployment; the CPU figures are the ones that carry over).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from _common import environment, format_table, run_closed_loop, write_json
from _redis_cluster import LocalCluster, LoneRedis
from tokenbank import Settings, TokenBank, TransferRequest
from tokenbank.storage.redis.keys import TokenKeys

PREFIX = "bench"
TASKS = 50
PER_ACCOUNT = 1_000


@dataclass(frozen=True)
class Plan:
    accounts: int
    seconds: float


FULL = Plan(accounts=10_000, seconds=10.0)
QUICK = Plan(accounts=300, seconds=0.75)


def settings(url: str, symbol: str, accounts: int) -> Settings:
    return Settings(
        storage_mode="redis", redis_url=url, key_prefix=PREFIX, symbol=symbol, initial_supply=accounts * PER_ACCOUNT,
        hold_sweep_interval=0, enable_notifications=False,
    )  # fmt: skip


def account(n: int) -> str:
    return f"acct{n}"


# client process ------------------------------------------------------------------------------------------------
async def client(url: str, symbol: str, accounts: int, start_at: float, seconds: float) -> dict[str, Any]:
    async with TokenBank(settings(url, symbol, accounts)) as bank:
        rng = random.Random(symbol)

        async def transfer() -> None:
            a, b = rng.sample(range(accounts), 2)
            await bank.transfer(account(a), account(b), "0.01")

        await run_closed_loop(transfer, TASKS, seconds=0.2)  # connections and scripts warm
        await asyncio.sleep(max(0.0, start_at - time.time()))
        result = await run_closed_loop(transfer, TASKS, seconds=seconds)
    return {"symbol": symbol, "count": result.count, "seconds": result.seconds, "p50_ms": result.p50_ms}


# parent ----------------------------------------------------------------------------------------------------------
async def fund(url: str, symbol: str, accounts: int) -> None:
    async with TokenBank(settings(url, symbol, accounts)) as bank:
        for start in range(0, accounts, 500):
            batch = [
                TransferRequest("treasury", account(n), PER_ACCOUNT) for n in range(start, min(start + 500, accounts))
            ]
            await bank.transfer_many(batch, atomic=True)


async def node_stats(port: int) -> tuple[float, dict[str, int]]:
    """Redis CPU seconds so far and calls per command."""
    client = aioredis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    try:
        cpu = await client.info("cpu")
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    calls = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), calls


def spread_symbols(cluster: LocalCluster) -> dict[int, str]:
    """Master port -> a symbol whose hash tag that master serves."""
    masters = {port for _, _, port in cluster.slot_owners(cluster.nodes[0].port)}
    chosen: dict[int, str] = {}
    for n in range(500):
        symbol = f"T{n}"
        slot = cluster.keyslot(TokenKeys.for_token(PREFIX, symbol).token)
        chosen.setdefault(cluster.master_of_slot(slot).port, symbol)
        if set(chosen) == masters:
            return dict(sorted(chosen.items()))
    raise RuntimeError("no three symbols spread over the masters")


async def measure(url: str, ports: list[int], symbols: list[str], plan: Plan) -> dict[str, Any]:
    """Fund the tokens, run one client process per token at once; per-node CPU and script-call deltas."""
    for symbol in symbols:
        await fund(url, symbol, plan.accounts)
    start_at = time.time() + 4.0  # time for every client to import, connect and warm up
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", url, symbol, str(plan.accounts), str(start_at), str(plan.seconds),
            stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parent,
        )
        for symbol in symbols
    ]  # fmt: skip
    await asyncio.sleep(max(0.0, start_at - time.time() - 0.05))
    before = {port: await node_stats(port) for port in ports}
    outputs = [await asyncio.wait_for(proc.communicate(), plan.seconds + 120) for proc in procs]
    after = {port: await node_stats(port) for port in ports}
    if any(proc.returncode for proc in procs):
        raise RuntimeError(f"a client process failed: {[proc.returncode for proc in procs]}")
    clients = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    nodes = {}
    for port in ports:
        calls = {name: n - before[port][1].get(name, 0) for name, n in after[port][1].items()}
        nodes[port] = {"cpu_s": after[port][0] - before[port][0], "evalsha": calls.get("evalsha", 0),
                       "commands": sum(calls.values())}  # fmt: skip
    transfers = sum(c["count"] for c in clients)
    seconds = max(c["seconds"] for c in clients)
    cpu = sum(node["cpu_s"] for node in nodes.values())
    return {"clients": clients, "nodes": nodes, "transfers": transfers, "tps": transfers / seconds,
            "redis_cpu_s": cpu, "transfers_per_cpu_s": transfers / cpu if cpu else None}  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    plan = QUICK if args.quick else FULL
    cluster, single = LocalCluster(masters=3), LoneRedis()
    try:
        cluster.start()
        single.start()
        by_master = spread_symbols(cluster)
        symbols = list(by_master.values())
        print(f"tokens {', '.join(f'{s} -> master :{p}' for p, s in by_master.items())}; {plan.accounts:,} accounts "
              f"each, {TASKS} tasks per client process, {plan.seconds} s", flush=True)  # fmt: skip
        one = await measure(single.url, [single.port], symbols, plan)
        many = await measure(cluster.url, list(by_master), symbols, plan)
    finally:
        cluster.stop()
        single.stop()

    rows = [["single", f":{single.port}", "all 3", f"{one['redis_cpu_s']:.2f}", "1.00", "1.00", f"{one['tps']:,.0f}"]]
    total_cpu = many["redis_cpu_s"] or 1.0
    total_calls = sum(node["evalsha"] for node in many["nodes"].values()) or 1
    shares = {}
    for port, node in many["nodes"].items():
        shares[port] = {"cpu": node["cpu_s"] / total_cpu, "evalsha": node["evalsha"] / total_calls}
        rows.append(["cluster", f":{port}", by_master[port], f"{node['cpu_s']:.2f}", f"{shares[port]['cpu']:.2f}",
                     f"{shares[port]['evalsha']:.2f}", ""])  # fmt: skip
    rows.append(["cluster", "all", "all 3", f"{many['redis_cpu_s']:.2f}", "1.00", "1.00", f"{many['tps']:,.0f}"])
    print(format_table(["target", "node", "token", "Redis CPU s", "CPU share", "EVALSHA share", "transfers/s"], rows))
    worst = max(abs(share["cpu"] - 1 / 3) for share in shares.values())
    efficiency = (many["transfers_per_cpu_s"] or 0) / (one["transfers_per_cpu_s"] or 1)
    print(f"transfers per Redis-CPU-second: cluster {many['transfers_per_cpu_s']:,.0f}, "
          f"single {one['transfers_per_cpu_s']:,.0f}")  # fmt: skip
    print(f"ratio Redis-CPU efficiency cluster/single: {efficiency:.2f}  [info]")
    print(f"ratio transfers/s cluster/single: {many['tps'] / one['tps']:.2f}  [info: clients share the 2 cores]")
    print(f"load spread: each master's CPU share vs 1/3, largest gap {worst:.3f}")
    if args.json:
        write_json(args.json, {
            "benchmark": "redis_cluster", "environment": environment(), "quick": args.quick,
            "plan": {"accounts": plan.accounts, "seconds": plan.seconds, "tasks": TASKS},
            "single": one, "cluster": many, "shares": {str(p): s for p, s in shares.items()},
            "summary": {"efficiency_ratio": efficiency, "tps_ratio": many["tps"] / one["tps"],
                        "largest_share_gap": worst},
        })  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        url, symbol, accounts, start_at, seconds = sys.argv[2:7]
        print(json.dumps(asyncio.run(client(url, symbol, int(accounts), float(start_at), float(seconds)))))
    else:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--quick", action="store_true", help="300 accounts per token, 0.75 s runs")
        parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
        asyncio.run(main(parser.parse_args()))
