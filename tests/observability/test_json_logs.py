"""TOKEN_LOG_FORMAT=json: one JSON object per line, the records' structured fields, never a secret."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tokenbank import InsufficientBalanceError, Settings, TokenBank
from tokenbank.logs import JsonFormatter, mask_secrets


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("tokenbank", logging.ERROR, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_standard_and_extra_fields() -> None:
    line = JsonFormatter().format(
        _record("%s refused", "transfer", operation="transfer", amount=250, transaction_id="tx1", latency_ms=1.5)
    )
    out = json.loads(line)
    assert "\n" not in line
    assert {"time", "level", "logger", "message"} <= out.keys()
    assert (out["level"], out["logger"], out["message"]) == ("ERROR", "tokenbank", "transfer refused")
    assert out["time"].endswith("+00:00")
    assert (out["operation"], out["amount"], out["transaction_id"], out["latency_ms"]) == ("transfer", 250, "tx1", 1.5)


def test_secrets_are_masked() -> None:
    url = "postgresql+asyncpg://app:s3cr3t-pw@db.example:5432/ledger"
    line = JsonFormatter().format(
        _record(
            "cannot connect to %s (api_key=AKIA-XYZ)", url,
            database_url=url, redis_url="redis://:r3dis-pw@cache:6379/0", api_key="AKIA-XYZ",
            headers={"Authorization": "Bearer tok-123"},
        )
    )  # fmt: skip
    for secret in ("s3cr3t-pw", "r3dis-pw", "AKIA-XYZ", "tok-123"):
        assert secret not in line
    out = json.loads(line)
    assert out["database_url"] == "postgresql+asyncpg://app:***@db.example:5432/ledger"
    assert out["redis_url"] == "redis://:***@cache:6379/0"
    assert out["api_key"] == "***"
    assert "app:***@db.example" in out["message"]
    assert mask_secrets("password=hunter2 rest") == "password=*** rest"


def test_setting_reads_the_variable(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings().log_format == "text"
    clean_env.setenv("TOKEN_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    clean_env.setenv("TOKEN_LOG_FORMAT", "xml")
    with pytest.raises(Exception, match="TOKEN_LOG_FORMAT"):
        Settings()


async def test_bank_logs_json_lines(tokenbank_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    for handler in list(tokenbank_logger.handlers):
        tokenbank_logger.removeHandler(handler)
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    tokenbank_logger.setLevel(logging.DEBUG)
    settings = Settings(database_url="sqlite+aiosqlite:///:memory:", initial_supply=10, log_format="json")
    async with TokenBank(settings) as bank:
        await bank.transfer("treasury", "alice", "2")
        with pytest.raises(InsufficientBalanceError):
            await bank.transfer("alice", "bob", "5")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines, "no log line"
    applied = [x for x in lines if x["message"] == "transfer OK"]
    assert applied and applied[0]["from_user_id"] == "treasury" and applied[0]["amount"] == 200
    assert {"transaction_id", "latency_ms", "operation"} <= applied[0].keys()
    refused = [x for x in lines if x.get("code") == "insufficient_balance"]
    assert refused and refused[0]["level"] == "INFO"
    assert tokenbank_logger.propagate is False
    # A second bank does not add a second handler (each line once).
    TokenBank(settings)
    assert len(tokenbank_logger.handlers) == 1


def test_text_format_leaves_logging_alone(tokenbank_logger: logging.Logger) -> None:
    before = list(tokenbank_logger.handlers)
    TokenBank(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    assert tokenbank_logger.handlers == before


def test_cli_verbose_honours_json(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKEN_") and not k.endswith("_URL")}
    env |= {"TOKEN_LOG_FORMAT": "json", "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/tb.db"}
    cli = [sys.executable, "-m", "tokenbank"]
    subprocess.run([*cli, "init"], env=env, capture_output=True, text=True, check=True, timeout=60)
    result = subprocess.run(
        [*cli, "-vv", "mint", "alice", "3", "--reason", "test"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(x.get("operation") == "mint" and x["logger"] == "tokenbank" for x in lines), result.stderr
