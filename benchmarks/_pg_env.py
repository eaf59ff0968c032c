"""The benchmark's own PostgreSQL schema: create it, fund the accounts through tokenbank, drop it afterwards."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from tokenbank import Settings, TokenBank, TransferRequest

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
TOKEN = "BENCH"
TREASURY = "treasury"
PER_ACCOUNT = 1_000
"""Each account's starting balance: far more than a run's amount-1 transfers can take from one account."""
TREASURY_RESERVE = 10**12
"""Left in the treasury for the hot-source workload."""
FUND_BATCH = 1_000


def account(number: int) -> str:
    """Account ids are ``u1`` .. ``uN``; the pgbench script builds the same names as ``'u' || :a``."""
    return f"u{number}"


@dataclass(frozen=True, slots=True)
class Ledger:
    dsn: str
    schema: str
    accounts: int
    setup_seconds: float

    def settings(self, pool_size: int) -> Settings:
        return bank_settings(self.dsn, self.schema, self.accounts, pool_size)

    @property
    def server_settings(self) -> dict[str, str]:
        """What the tokenbank engine sets on its connections; the baselines use the same."""
        return {"search_path": self.schema, "jit": "off"}


def bank_settings(dsn: str, schema: str, accounts: int, pool_size: int) -> Settings:
    return Settings(
        database_url=dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
        database_schema=schema,
        symbol=TOKEN,
        decimals=0,
        initial_supply=Decimal(accounts * PER_ACCOUNT + TREASURY_RESERVE),
        treasury_account=TREASURY,
        pool_size=pool_size,
        hold_sweep_interval=0,
    )


@asynccontextmanager
async def bench_ledger(dsn: str, accounts: int) -> AsyncIterator[Ledger]:
    """A fresh schema holding token BENCH with ``accounts`` funded accounts; dropped on exit, even on error."""
    schema = f"tb_bench_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        started = time.perf_counter()
        async with TokenBank(bank_settings(dsn, schema, accounts, pool_size=2)) as bank:
            await _fund(bank, accounts)
        await _analyze(dsn, schema)
        yield Ledger(dsn, schema, accounts, time.perf_counter() - started)
    finally:
        await _drop_schema(dsn, schema)


async def _fund(bank: TokenBank, accounts: int) -> None:
    """Initial supply sits in the treasury; hand it out with ``transfer_many`` in batches of FUND_BATCH."""
    for first in range(1, accounts + 1, FUND_BATCH):
        batch = [
            TransferRequest(TREASURY, account(n), PER_ACCOUNT) for n in range(first, min(first + FUND_BATCH, accounts + 1))
        ]
        failed = [r for r in await bank.transfer_many(batch, atomic=True) if not r.ok]
        if failed:
            raise RuntimeError(f"funding failed: {failed[0].error!r}")


async def _analyze(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        await conn.execute("ANALYZE tb_accounts; ANALYZE tb_transactions")
    finally:
        await conn.close()


async def _drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def verify_ledger(ledger: Ledger) -> list[str]:
    """The failed ``verify()`` checks (empty when the ledger is consistent after all the runs)."""
    async with TokenBank(ledger.settings(pool_size=1)) as bank:
        report = await bank.verify()
    return [f"{check.name}: {check.detail}" for check in report.checks if not check.ok]
