"""What a new user hits first, as one line and a clean exit code: a store down at ``serve``, ``export | head``,
``export`` in redis mode, and a ``demo`` run in a shell configured for a real ledger."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backends import REDIS_SESSION_PREFIX, REDIS_URL, unique
from tests.cli.conftest import Cli, assert_one_line_error, runner
from tokenbank import Settings, TokenBank, TransferRequest
from tokenbank.cli import app

SCRIPT = Path(sys.executable).with_name("tokenbank")


def run_script(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
    )


def assert_one_line(result: subprocess.CompletedProcess[str], code: str) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error [{code}]: "), lines[0]
    return lines[0]


# serve -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--database-url", "postgresql+asyncpg://tokenbank:pw-s3cret@127.0.0.1:1/x"), {}),
        (("--mode", "redis"), {"REDIS_URL": "redis://127.0.0.1:1/0"}),
    ],
    ids=["postgresql", "redis"],
)
def test_serve_with_the_store_down_is_one_line(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, args: tuple[str, ...], env: dict[str, str]
) -> None:
    result = run_script(*args, "serve", "--port", "1", env={**env, "TOKENBANK_API_KEY": "k"}, cwd=tmp_path)
    assert_one_line(result, "storage_unavailable")
    assert "Traceback" not in result.stderr and "pw-s3cret" not in result.stderr


# export ------------------------------------------------------------------------------------------------------
def test_export_into_a_closed_pipe_stops_quietly(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'big.db'}"

    async def fill() -> None:  # far more CSV than a pipe buffers, so the export is still writing when head leaves
        async with TokenBank(Settings(database_url=url, symbol="TST", initial_supply=1_000_000)) as bank:
            for start in range(0, 3000, 500):
                await bank.transfer_many([TransferRequest("treasury", f"u{i}", "1") for i in range(start, start + 500)])

    asyncio.run(fill())
    env = {**os.environ, "DATABASE_URL": url, "TOKEN_SYMBOL": "TST"}
    with subprocess.Popen(
        [str(SCRIPT), "export"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as export:
        assert export.stdout is not None and export.stderr is not None
        assert export.stdout.readline().startswith("seq,id,type")
        export.stdout.close()  # what `head -1` does after its line
        code = export.wait(timeout=60)
        stderr = export.stderr.read()
    assert code == 141, stderr
    assert "error" not in stderr and "Traceback" not in stderr and "Exception ignored" not in stderr


def test_export_in_redis_mode_says_what_works(cli: Cli) -> None:
    line = assert_one_line_error(cli("export", TOKEN_STORAGE_MODE="redis"), "configuration_error")
    assert "export reads the SQL ledger" in line and "hybrid" in line and "history" in line
    assert "analytics" not in line


# demo --------------------------------------------------------------------------------------------------------
def test_demo_ignores_the_environment_of_a_real_ledger(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.chdir(tmp_path)
    real_ledger = {
        "TOKEN_STORAGE_MODE": "redis",
        "REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens: a demo that used it would fail
        "DATABASE_URL": "postgresql+asyncpg://127.0.0.1:1/real",
        "TOKEN_SYMBOL": "REAL",
        "TOKEN_KEY_PREFIX": "real",
        "TOKEN_DECIMALS": "6",
        "TOKEN_MAX_SUPPLY": "5",
    }
    result = runner.invoke(app, ["demo", "--accounts", "20", "--operations", "40", "--seed", "3"], env=real_ledger)
    assert result.exit_code == 0, result.output
    banner = result.stdout.splitlines()[0]
    assert "DEMO on sqlite+aiosqlite:///tokenbank-demo.db (sql)" in banner
    assert "verify: ok" in result.stdout
    assert (tmp_path / "tokenbank-demo.db").exists()


def test_demo_store_options_come_from_its_command_line(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.chdir(tmp_path)
    args = ["--mode", "redis", "demo", "--quick", "--redis-url", "redis://127.0.0.1:1/0"]
    result = runner.invoke(app, args, env={"REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert result.exit_code == 1
    assert "DEMO on redis://127.0.0.1:1/0 (redis)" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error [storage_unavailable]: "), result.stderr
    assert not (tmp_path / "tokenbank-demo.db").exists()


# redis mode --------------------------------------------------------------------------------------------------
@pytest.mark.redis
def test_redis_mode_commands_need_no_sqlite_file(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.chdir(tmp_path)
    env = {"TOKEN_STORAGE_MODE": "redis", "REDIS_URL": REDIS_URL, "TOKEN_KEY_PREFIX": unique(REDIS_SESSION_PREFIX)}
    env |= {"TOKEN_SYMBOL": "RDS", "TOKEN_INITIAL_SUPPLY": "100"}
    for args in (["init"], ["mint", "alice", "5"], ["hold", "alice", "bob", "2", "--expires-in", "60"]):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
    balance = runner.invoke(app, ["balance", "alice", "--json"], env=env)
    assert balance.exit_code == 0, balance.output
    assert '"held": "2.00"' in balance.stdout and '"balance": "3.00"' in balance.stdout
    assert not (tmp_path / "tokenbank.db").exists()
