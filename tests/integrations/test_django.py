"""The Django integration through Django's own test client, management command and a task thread."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.core.management.base import CommandError  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from tests.backends import BoundBackend, Scope, by_name, params  # noqa: E402
from tokenbank import ConfigurationError  # noqa: E402
from tokenbank.integrations.django import bank_settings, close_bank, get_bank  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
AUTH = {"HTTP_AUTHORIZATION": "Bearer change-me"}


@pytest.fixture(params=params(by_name("sqlite", "postgres")))
def config(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """settings.TOKENBANK pointing at an isolated ledger with 1000.00 in the treasury."""
    backend: BoundBackend = request.param.bind(Scope(tmp_path))
    tokenbank = backend.settings(initial_supply=1000).model_dump(exclude_defaults=True)
    with override_settings(TOKENBANK=tokenbank):
        yield tokenbank
        assert get_bank().verify().ok
    close_bank()


def test_views_through_the_test_client(config: dict[str, Any]) -> None:
    client = Client()
    assert client.post("/transfer", {"from": "treasury"}, content_type="application/json").status_code == 401
    body = {"from": "treasury", "to": "alice", "amount": "12.5"}
    response = client.post("/transfer", body, content_type="application/json", **AUTH)
    assert response.status_code == 201, response.content
    assert response.json()["amount"] == "12.50"
    assert client.get("/balance/alice").json() == {"user_id": "alice", "balance": "12.50"}
    refused = client.post(
        "/transfer", {"from": "alice", "to": "bob", "amount": "99"}, content_type="application/json", **AUTH
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "insufficient_balance")
    bad = client.post("/transfer", "not json", content_type="application/json", **AUTH)
    assert bad.status_code == 422
    assert client.get("/balance/" + "x" * 300).status_code == 422


def test_one_bank_for_views_and_task_threads(config: dict[str, Any]) -> None:
    def task(n: int) -> None:  # what a Celery task body does: the same get_bank(), on a worker thread
        get_bank().transfer("treasury", f"worker{n % 4}", "1")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(task, range(40)))
    bank = get_bank()
    assert bank is get_bank()
    assert sum(bank.get_balances([f"worker{n}" for n in range(4)]).values()) == Decimal(40)


def test_management_command(config: dict[str, Any]) -> None:
    out = io.StringIO()
    call_command("tokenbank", "transfer", "treasury", "bob", "3", "--reason", "prize", stdout=out)
    call_command("tokenbank", "balance", "bob", stdout=out)
    call_command("tokenbank", "supply", stdout=out)
    call_command("tokenbank", "top", "--limit", "2", stdout=out)
    call_command("tokenbank", "history", "bob", stdout=out)
    call_command("tokenbank", "mint", "bob", "1", "--reason", "bonus", stdout=out)
    call_command("tokenbank", "burn", "bob", "1", "--reason", "fee", stdout=out)
    call_command("tokenbank", "verify", stdout=out)
    text = out.getvalue()
    symbol = config["symbol"]
    assert f"bob: 3.00 {symbol}" in text
    assert f"total: 1000.00 {symbol}" in text
    assert json.loads(text.splitlines()[5])["amount"] == "3.00"
    with pytest.raises(CommandError, match=r"error \[insufficient_balance\]"):
        call_command("tokenbank", "transfer", "bob", "alice", "50", stdout=out)


def test_settings_must_be_a_dict(clean_env: pytest.MonkeyPatch) -> None:
    with override_settings(TOKENBANK=["nope"]), pytest.raises(ConfigurationError, match=r"settings\.TOKENBANK"):
        bank_settings()
    with override_settings(TOKENBANK={"decimals": 99}), pytest.raises(ConfigurationError, match="TOKEN_DECIMALS"):
        get_bank()


def test_manage_py_runs_the_command(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/tb.db", "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    command = [sys.executable, "-m", "examples.django_app.manage", "tokenbank", "balance", "treasury"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "treasury: 1000000.00 GEMS"
