"""The pytest plugin as a user meets it: a fresh project whose conftest.py says
``pytest_plugins = ["tokenbank.testing"]``, run by pytest in a subprocess (asyncio strict and auto modes)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CONFTEST = """
import pytest

pytest_plugins = ["tokenbank.testing"]
"""

USER_TESTS = """
from datetime import timedelta

import pytest

from tokenbank import HoldStatus, InsufficientBalanceError
from tokenbank.testing import ManualClock

pytestmark = pytest.mark.asyncio


async def test_bank_starts_with_a_treasury(token_bank):
    assert await token_bank.get_balance("treasury") == 1_000_000
    info = await token_bank.get_token_info()
    assert info.symbol == "TEST"


async def test_each_test_has_its_own_ledger(token_bank):
    await token_bank.transfer("treasury", "alice", 5)
    assert await token_bank.get_balance("alice") == 5


async def test_and_the_next_one_starts_empty(token_bank):
    assert await token_bank.get_balance("alice") == 0


async def test_hold_expires_with_the_clock(token_bank, token_clock):
    assert isinstance(token_clock, ManualClock) and token_bank.clock is token_clock
    await token_bank.transfer("treasury", "alice", 100)
    hold = await token_bank.hold("alice", "shop", 40, expires_in=timedelta(minutes=15))
    token_clock.advance(timedelta(minutes=15))
    assert await token_bank.expire_holds() == 1
    assert (await token_bank.get_hold(hold.id)).status is HoldStatus.VOIDED
    assert await token_bank.get_balance("alice") == 100


async def test_events_are_recorded(token_bank, token_events):
    await token_events.watch("alice")
    await token_bank.transfer("treasury", "alice", 7)
    with pytest.raises(InsufficientBalanceError):
        await token_bank.transfer("alice", "bob", 8)
    [update] = await token_events.wait_for(1)
    assert (update.user_id, update.balance, update.change) == ("alice", 7, 7)
"""

SETTINGS_OVERRIDE = """
import pytest

pytestmark = pytest.mark.asyncio


@pytest.fixture
def token_bank_settings():
    return {"symbol": "GEMS", "decimals": 0, "initial_supply": 50}


async def test_overridden_settings(token_bank):
    info = await token_bank.get_token_info()
    assert (info.symbol, info.decimals, info.total_supply) == ("GEMS", 0, 50)
"""


DOCS = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
# The pytest files of the docs: python blocks with a file name as title (test_docs.py runs the untitled ones).
DOC_FILE = re.compile(r'^```python title="([\w.]+)"\n(.*?)^```', re.S | re.M)


def _ini(root: Path, mode: str) -> None:
    (root / "pytest.ini").write_text(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"
    )


def _project(root: Path, mode: str) -> Path:
    _ini(root, mode)
    (root / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (root / "test_ledger.py").write_text(USER_TESTS)
    (root / "test_settings_override.py").write_text(SETTINGS_OVERRIDE)
    return root


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=root, capture_output=True, text=True, timeout=240, check=False,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql+asyncpg://nobody@192.0.2.1/none",
             "TOKEN_STORAGE_MODE": "redis", "TOKEN_DECIMALS": "7"},
    )  # fmt: skip


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_a_users_suite_runs_on_the_fixtures(tmp_path: Path, mode: str) -> None:
    # The shell's DATABASE_URL / TOKEN_* point elsewhere on purpose: a test bank must not follow them.
    result = _run(_project(tmp_path, mode))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout, result.stdout


def test_the_fixtures_are_listed(tmp_path: Path) -> None:
    result = _run(_project(tmp_path, "strict"), "--fixtures")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("token_bank", "token_bank_settings", "token_clock", "token_events"):
        assert name in result.stdout


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_the_docs_pytest_examples_pass(tmp_path: Path, mode: str) -> None:
    files = DOC_FILE.findall(DOCS.read_text())
    assert [name for name, _ in files] == ["conftest.py", "test_checkout.py", "test_whole_tokens.py"]
    _ini(tmp_path, mode)
    for name, code in files:
        (tmp_path / name).write_text(code)
    result = _run(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout, result.stdout
