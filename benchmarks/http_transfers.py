"""HTTP transfer throughput: ``POST /transfers`` of ``tokenbank serve`` vs a bare FastAPI + Redis INCR endpoint.

    .venv/bin/python benchmarks/http_transfers.py [--quick] [--database-url URL] [--concurrency N] [--json out.json]

Starts two uvicorn servers as subprocesses on free loopback ports, with the same uvicorn settings:
``tokenbank serve`` (run_server) on a ledger of funded accounts (SQLite in a temp dir by default; PostgreSQL in a
fresh schema with ``--database-url postgresql+asyncpg://...``), and a minimal FastAPI app whose POST endpoint does
nothing but one Redis INCR on a unique key (the floor any HTTP + one-store-round-trip endpoint pays). Then, one
after the other, N concurrent httpx clients post for a fixed duration; prints requests/s, p50/p99 latency and
the ratio tokenbank/baseline. Everything it created is removed at the end, also on error. Targets are reported,
never asserted: the exit status is 0 unless a request failed or the ledger does not verify afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
API_KEY = secrets.token_urlsafe(24)
TREASURY = "treasury"
PER_ACCOUNT = 1_000_000
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True, slots=True)
class Plan:
    accounts: int
    seconds: float
    warmup_seconds: float
    concurrency: int


FULL = Plan(accounts=10_000, seconds=10.0, warmup_seconds=1.0, concurrency=32)
QUICK = Plan(accounts=200, seconds=1.0, warmup_seconds=0.1, concurrency=8)


# the baseline app (imported by uvicorn in its own process) --------------------------------------------------
def baseline_app() -> Any:
    """uvicorn factory: POST /transfers = one Redis INCR on $BENCH_REDIS_KEY, nothing else."""
    import redis.asyncio as aioredis
    from fastapi import FastAPI

    key = os.environ["BENCH_REDIS_KEY"]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = aioredis.from_url(os.environ["BENCH_REDIS_URL"])
        yield
        await app.state.redis.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/transfers", status_code=201)
    async def transfer(body: dict[str, Any]) -> dict[str, int]:
        return {"seq": await app.state.redis.incr(key)}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


# servers -----------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(command: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    """Start a server subprocess; yield its URL once GET /health answers 200; stop it (only this process)."""
    import httpx

    proc = subprocess.Popen(
        command, env={**os.environ, **env}, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server on port {port} did not become healthy within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def uvicorn_env() -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}


# ledger ------------------------------------------------------------------------------------------------------
def bank_env(database_url: str, schema: str | None, symbol: str, accounts: int) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "TOKEN_SYMBOL": symbol,
        "TOKEN_DECIMALS": "0",
        "TOKEN_INITIAL_SUPPLY": str(accounts * PER_ACCOUNT),
        "TOKEN_TREASURY_ACCOUNT": TREASURY,
        "TOKEN_HOLD_SWEEP_INTERVAL": "0",
        "TOKEN_STORAGE_MODE": "sql",
    }
    if schema:
        env["TOKEN_DATABASE_SCHEMA"] = schema
    return env


async def fund(env: dict[str, str], accounts: int) -> None:
    from tokenbank import Settings, TokenBank, TransferRequest

    async with TokenBank(Settings.load(**settings_kwargs(env))) as bank:
        for first in range(0, accounts, 1000):
            batch = [TransferRequest(TREASURY, f"u{n}", PER_ACCOUNT) for n in range(first, min(first + 1000, accounts))]
            results = await bank.transfer_many(batch, atomic=True)
            assert all(r.ok for r in results), [r.error for r in results if not r.ok][:1]


async def verify(env: dict[str, str], accounts: int) -> list[str]:
    from tokenbank import Settings, TokenBank

    async with TokenBank(Settings.load(**settings_kwargs(env))) as bank:
        report = await bank.verify()
        problems = [f"{c.name}: {c.detail}" for c in report.checks if not c.ok]
        if await bank.get_total_supply() != Decimal(accounts * PER_ACCOUNT):
            problems.append("total supply changed")
        return problems


def settings_kwargs(env: dict[str, str]) -> dict[str, Any]:
    names = {
        "DATABASE_URL": "database_url", "TOKEN_SYMBOL": "symbol", "TOKEN_DECIMALS": "decimals",
        "TOKEN_INITIAL_SUPPLY": "initial_supply", "TOKEN_TREASURY_ACCOUNT": "treasury_account",
        "TOKEN_HOLD_SWEEP_INTERVAL": "hold_sweep_interval", "TOKEN_DATABASE_SCHEMA": "database_schema",
    }  # fmt: skip
    return {names[k]: v for k, v in env.items() if k in names}


async def drop_schema(database_url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1), timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


# load --------------------------------------------------------------------------------------------------------
async def measure(url: str, plan: Plan, headers: dict[str, str]) -> Any:
    import httpx

    from _common import run_closed_loop

    rng = random.Random(42)
    limits = httpx.Limits(max_connections=plan.concurrency, max_keepalive_connections=plan.concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:

        async def post() -> None:
            a, b = rng.sample(range(plan.accounts), 2)
            response = await client.post(
                "/transfers", json={"from_user_id": f"u{a}", "to_user_id": f"u{b}", "amount": "1"}
            )
            if response.status_code != 201:
                raise RuntimeError(f"POST /transfers answered {response.status_code}: {response.text[:300]}")

        return await run_closed_loop(post, plan.concurrency, seconds=plan.seconds, warmup_seconds=plan.warmup_seconds)


async def run(plan: Plan, database_url: str | None, redis_url: str, json_path: str | None) -> int:
    import redis.asyncio as aioredis

    from _common import busy_warning, environment, format_table, write_json

    warning = busy_warning()
    if warning:
        print(warning)
    run_id = secrets.token_hex(4)
    symbol = f"HTTP{run_id}".upper()[:16]
    redis_key = f"tb-bench:http-baseline:{run_id}"
    workdir = Path(tempfile.mkdtemp(prefix="tb-http-bench-"))
    schema = None
    if database_url is None:
        database_url = f"sqlite+aiosqlite:///{workdir}/bench.db"
        store = "SQLite"
    else:
        schema = f"tb_http_bench_{os.getpid()}_{run_id}"
        store = "PostgreSQL"
    env = bank_env(database_url, schema, symbol, plan.accounts)
    redis_client = aioredis.from_url(redis_url)
    try:
        started = time.perf_counter()
        await fund(env, plan.accounts)
        print(f"{store} ledger: {plan.accounts:,} funded accounts in {time.perf_counter() - started:.1f} s; "
              f"{plan.concurrency} concurrent clients, {plan.seconds:g} s per server")  # fmt: skip
        port = free_port()
        tokenbank_cmd = [
            sys.executable, "-c",
            "from tokenbank.cli.serve import run_server; "
            f"run_server('127.0.0.1', {port}, log_level='warning', access_log=False)",
        ]  # fmt: skip
        with server(tokenbank_cmd, {**uvicorn_env(), **env, "TOKENBANK_API_KEY": API_KEY}, port) as url:
            library = await measure(url, plan, {"Authorization": f"Bearer {API_KEY}"})
        port = free_port()
        baseline_cmd = [
            sys.executable, "-m", "uvicorn", "http_transfers:baseline_app", "--factory", "--app-dir", str(HERE),
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        baseline_env = {**uvicorn_env(), "BENCH_REDIS_URL": redis_url, "BENCH_REDIS_KEY": redis_key}
        with server(baseline_cmd, baseline_env, port) as url:
            baseline = await measure(url, plan, {})
        increments = int(await redis_client.get(redis_key) or 0)
        problems = await verify(env, plan.accounts)
    finally:
        await redis_client.delete(redis_key)
        await redis_client.aclose()
        if schema is not None:
            await drop_schema(database_url, schema)
        shutil.rmtree(workdir, ignore_errors=True)

    ratio = library.tps / baseline.tps if baseline.tps else float("nan")
    print()
    print(
        format_table(
            ["server", "requests", "req/s", "p50 ms", "p99 ms"],
            [
                [
                    f"tokenbank serve, POST /transfers ({store})",
                    library.count,
                    library.tps,
                    library.p50_ms,
                    library.p99_ms,
                ],
                ["FastAPI + one Redis INCR (baseline)", baseline.count, baseline.tps, baseline.p50_ms, baseline.p99_ms],
            ],
        )
    )
    print(f"ratio tokenbank/baseline req/s: {ratio:.2f}")
    print(f"baseline INCRs seen by Redis: {increments:,} (warm-up included)")
    print(f"verify: {'ok' if not problems else 'FAILED: ' + '; '.join(problems)}")
    if json_path:
        write_json(
            json_path,
            {
                "environment": environment(),
                "store": store,
                "plan": asdict(plan),
                "tokenbank": library.as_dict(),
                "baseline": baseline.as_dict(),
                "ratio": ratio,
                "verify": problems,
            },
        )
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 accounts, 8 clients, 1 s per server (a smoke run)")
    parser.add_argument("--database-url", help="PostgreSQL (postgresql+asyncpg://...) instead of a temp SQLite file")
    parser.add_argument(
        "--redis-url", default=DEFAULT_REDIS_URL, help=f"for the baseline (default {DEFAULT_REDIS_URL})"
    )
    parser.add_argument("--concurrency", type=int, help="concurrent clients (default 32; 8 with --quick)")
    parser.add_argument("--seconds", type=float, help="measured seconds per server (default 10; 2 with --quick)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = Plan(
        accounts=plan.accounts,
        seconds=args.seconds or plan.seconds,
        warmup_seconds=plan.warmup_seconds,
        concurrency=args.concurrency or plan.concurrency,
    )
    return asyncio.run(run(plan, args.database_url, args.redis_url, args.json))


if __name__ == "__main__":
    sys.exit(main())
