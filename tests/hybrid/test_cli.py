"""``tokenbank sync``, ``reconcile`` and ``rebuild-cache`` (run in-process through CliRunner), and
``python -m tokenbank sync``."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import typer
from typer.testing import CliRunner

from tests.backends import POSTGRES_URL, REDIS_SESSION_PREFIX, REDIS_URL
from tests.hybrid.conftest import delete_keys
from tests.hybrid.support import PYTHON, ROOT
from tokenbank import Settings, TokenBank
from tokenbank.cli import sync as sync_cli
from tokenbank.storage.hybrid.backend import HybridStorage

pytestmark = [pytest.mark.redis, pytest.mark.postgres]
runner = CliRunner()
app = typer.Typer()
sync_cli.register(app)


@pytest.fixture
def env(clean_env: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    schema, prefix = "tbhy_" + secrets.token_hex(6), REDIS_SESSION_PREFIX + "c" + secrets.token_hex(5)
    variables = {
        "TOKEN_STORAGE_MODE": "hybrid", "REDIS_URL": REDIS_URL, "DATABASE_URL": POSTGRES_URL,
        "TOKEN_DATABASE_SCHEMA": schema, "TOKEN_KEY_PREFIX": prefix, "TOKEN_SYMBOL": "CLI",
        "TOKEN_INITIAL_SUPPLY": "1000", "TOKEN_HOLD_SWEEP_INTERVAL": "0",
    }  # fmt: skip
    yield variables

    async def clean() -> None:
        await delete_keys(REDIS_URL, prefix)
        conn = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""), timeout=10)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(clean())


def _settings(env: dict[str, str], **extra: Any) -> Settings:
    return Settings.load(
        storage_mode="hybrid", redis_url=env["REDIS_URL"], database_url=env["DATABASE_URL"],
        database_schema=env["TOKEN_DATABASE_SCHEMA"], key_prefix=env["TOKEN_KEY_PREFIX"], symbol="CLI",
        initial_supply=1000, hold_sweep_interval=0, **extra,
    )  # fmt: skip


def _write(env: dict[str, str], count: int) -> None:
    async def work() -> None:
        async with TokenBank(_settings(env, enable_synchronization=False)) as bank:
            for i in range(count):
                await bank.transfer("treasury", f"c{i % 4}", 1)

    asyncio.run(work())


def _run(env: dict[str, str], *args: str) -> Any:
    return runner.invoke(app, list(args), env=env)


def test_sync_drain_then_reconcile_and_repair(env: dict[str, str]) -> None:
    _write(env, 25)
    result = _run(env, "sync", "--drain", "--consumer", "cli-test")
    assert result.exit_code == 0, result.output
    ok = _run(env, "reconcile", "--json", "--full")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["ok"] is True

    async def corrupt() -> None:
        store = HybridStorage(_settings(env, enable_synchronization=False))
        await store.open()
        await store.redis.client.hset(store.redis.keys.bal, "c1", "1")
        await store.close()

    asyncio.run(corrupt())
    drift = _run(env, "reconcile", "--json")
    assert drift.exit_code == 1
    report = json.loads(drift.stdout)
    assert report["drifted"] == [
        {"user_id": "c1", "redis_balance": "0.01", "postgres_balance": "6.00", "redis_held": "0.00",
         "postgres_held": "0.00"}
    ]  # fmt: skip
    repaired = _run(env, "reconcile", "--repair")
    assert repaired.exit_code == 0 and "repaired: set 1 accounts" in repaired.stdout, repaired.output
    assert json.loads(_run(env, "reconcile", "--json").stdout)["ok"] is True


def test_rebuild_cache_refuses_then_rebuilds(env: dict[str, str]) -> None:
    _write(env, 10)
    assert _run(env, "sync", "--drain").exit_code == 0
    refused = _run(env, "rebuild-cache")
    assert refused.exit_code == 1 and "--force" in refused.stderr
    asyncio.run(delete_keys(REDIS_URL, env["TOKEN_KEY_PREFIX"]))
    rebuilt = _run(env, "rebuild-cache", "--json")
    assert rebuilt.exit_code == 0, rebuilt.output
    data = json.loads(rebuilt.stdout)
    assert data["verified"] is True and data["transactions"] == 11 and data["accounts"] == 5


def test_commands_need_hybrid_mode(env: dict[str, str]) -> None:
    result = _run({**env, "TOKEN_STORAGE_MODE": "redis"}, "reconcile")
    assert result.exit_code == 1 and "TOKEN_STORAGE_MODE" in result.stderr


def test_python_dash_m_tokenbank_sync() -> None:
    proc = subprocess.run(
        [PYTHON, "-m", "tokenbank", "sync", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "--claim-idle" in proc.stdout
