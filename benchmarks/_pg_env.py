"""The benchmark's own PostgreSQL schema: create it through tokenbank, fund the accounts, drop it afterwards.

The same schema also holds two plain tables, ``bench_accounts`` and ``bench_journal``, with the same accounts,
balances and treasury: the raw baselines that do not go through tokenbank's schema (pgbench's one-statement
transfer and set-based batches) run on them.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from tokenbank import Settings, TokenBank, TokenBankError
from tokenbank.ids import new_id

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
TOKEN = "BENCH"
TREASURY = "treasury"
PER_ACCOUNT = 1_000
"""Each account's starting balance: far more than a run's amount-1 transfers can take from one account."""
TREASURY_RESERVE = 10**12
"""Left in the treasury for the hot-source workload."""
PLAIN_TREASURY = 0
"""The treasury's id in ``bench_accounts``; accounts ``u1`` .. ``uN`` are ids 1 .. N there."""


def account(number: int) -> str:
    """Account ids are ``u1`` .. ``uN``; the pgbench script builds the same names as ``'u' || :a``."""
    return f"u{number}"


@dataclass(frozen=True, slots=True)
class Ledger:
    dsn: str
    schema: str
    accounts: int
    setup_seconds: float
    server_version: str
    overrides: Mapping[str, str]

    def settings(self, pool_size: int) -> Settings:
        return bank_settings(self.dsn, self.schema, pool_size, self.overrides)

    @property
    def server_settings(self) -> dict[str, str]:
        """What the tokenbank engine sets on its connections; the baselines use the same."""
        return {"search_path": self.schema, "jit": "off"}


def bank_settings(dsn: str, schema: str, pool_size: int, overrides: Mapping[str, str]) -> Settings:
    """The benchmark's settings; ``overrides`` (field name -> text, e.g. ``batch_writes="false"``) come last."""
    return Settings.load(
        database_url=dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
        database_schema=schema,
        symbol=TOKEN,
        decimals=0,
        initial_supply=Decimal(TREASURY_RESERVE),
        treasury_account=TREASURY,
        pool_size=pool_size,
        hold_sweep_interval=0,
        **overrides,
    )


@asynccontextmanager
async def bench_ledger(dsn: str, accounts: int, overrides: Mapping[str, str]) -> AsyncIterator[Ledger]:
    """A fresh schema holding token BENCH with ``accounts`` funded accounts; dropped on exit, even on error.
    ``overrides``: library settings for every bank of the run (see :func:`bank_settings`)."""
    schema = f"tb_bench_{os.getpid()}_{secrets.token_hex(3)}"
    settings = bank_settings(dsn, schema, 1, overrides)  # a bad override fails here, before any schema exists
    try:
        started = time.perf_counter()
        async with TokenBank(settings):
            pass  # creates the schema, the tables, tb_apply, the token, and mints the reserve to the treasury
        version = await _setup(dsn, schema, accounts)
        yield Ledger(dsn, schema, accounts, time.perf_counter() - started, version, overrides)
    finally:
        await _drop_schema(dsn, schema)


_FUND_SQL = [
    """INSERT INTO tb_accounts (token, user_id, balance, held)
       SELECT $1, 'u' || n, $2, 0 FROM generate_series(1, $3::int) AS n""",
    """INSERT INTO tb_transactions (id, token, type, to_user_id, amount, to_balance_after, created_at, reason)
       SELECT id, $1, 'mint', 'u' || n, $2, $2, now(), 'benchmark funding'
       FROM unnest($3::text[]) WITH ORDINALITY AS t(id, n)""",
    "UPDATE tb_tokens SET total_supply = total_supply + $2 WHERE symbol = $1",
    "INSERT INTO tb_audit (token, action, details, created_at) VALUES ($1, 'benchmark.fund', $2, now())",
]


_PLAIN_SQL = [
    "CREATE TABLE bench_accounts (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0))",
    """CREATE TABLE bench_journal (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, from_id int NOT NULL,
       to_id int NOT NULL, amount bigint NOT NULL, created_at timestamptz NOT NULL)""",
    """INSERT INTO bench_accounts (id, balance)
       SELECT $1::int, $2::bigint UNION ALL SELECT n, $3 FROM generate_series(1, $4::int) AS n""",
]

# Accounts whose balance is not their starting balance plus what the journal moved, or below zero.
_PLAIN_CHECK_SQL = """
SELECT count(*) FROM bench_accounts AS acc
LEFT JOIN (SELECT id, sum(delta) AS delta
           FROM (SELECT from_id AS id, -amount AS delta FROM bench_journal
                 UNION ALL SELECT to_id, amount FROM bench_journal) AS moves
           GROUP BY id) AS j USING (id)
WHERE acc.balance <> CASE WHEN acc.id = $1::int THEN $2::bigint ELSE $3 END + coalesce(j.delta, 0) OR acc.balance < 0
"""


async def _setup(dsn: str, schema: str, accounts: int) -> str:
    """Fund tokenbank's accounts and create the plain tables, then ANALYZE. Returns the server version."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        await _fund(conn, accounts)
        async with conn.transaction():
            await conn.execute(_PLAIN_SQL[0])
            await conn.execute(_PLAIN_SQL[1])
            await conn.execute(_PLAIN_SQL[2], PLAIN_TREASURY, TREASURY_RESERVE, PER_ACCOUNT, accounts)
        await conn.execute("ANALYZE tb_accounts; ANALYZE tb_transactions; ANALYZE bench_accounts")
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def _fund(conn: asyncpg.Connection, accounts: int) -> None:
    """Mint PER_ACCOUNT to each account set-based, in one transaction: the account rows, one mint journal row
    each (UUIDv7 ids), the supply and an audit entry, so ``verify()`` holds. Seconds, where ``transfer_many``
    batches take minutes (tb_apply's result building grows quadratically with the batch)."""
    ids = [new_id() for _ in range(accounts)]
    async with conn.transaction():
        await conn.execute(_FUND_SQL[0], TOKEN, PER_ACCOUNT, accounts)
        await conn.execute(_FUND_SQL[1], TOKEN, PER_ACCOUNT, ids)
        await conn.execute(_FUND_SQL[2], TOKEN, PER_ACCOUNT * accounts)
        await conn.execute(_FUND_SQL[3], TOKEN, json.dumps({"accounts": accounts, "each": str(PER_ACCOUNT)}))


async def _drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def verify_ledger(ledger: Ledger) -> list[str]:
    """The failed ``verify()`` checks (empty when the ledger is consistent after all the runs)."""
    async with TokenBank(ledger.settings(pool_size=1)) as bank:
        try:
            report = await bank.verify()
        except TokenBankError as exc:
            return [f"verify() raised {type(exc).__name__}: {exc}"]
    return [f"{check.name}: {check.detail}" for check in report.checks if not check.ok]


async def verify_plain_tables(ledger: Ledger, journal_rows: int) -> list[str]:
    """The plain tables' problems: a journal row count other than the transfers pgbench reported (a baseline
    statement that silently moved nothing would count as a transfer), or balances the journal does not explain."""
    conn = await asyncpg.connect(ledger.dsn, server_settings={"search_path": ledger.schema})
    try:
        rows = await conn.fetchval("SELECT count(*) FROM bench_journal")
        wrong = await conn.fetchval(_PLAIN_CHECK_SQL, PLAIN_TREASURY, TREASURY_RESERVE, PER_ACCOUNT)
    finally:
        await conn.close()
    problems = []
    if rows != journal_rows:
        problems.append(f"bench_journal: {rows} rows, pgbench reported {journal_rows} transfers")
    if wrong:
        problems.append(f"bench_accounts: {wrong} balances not explained by bench_journal")
    return problems
