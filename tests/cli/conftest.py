"""Helpers of the CLI tests: the app run in-process on one scratch SQLite ledger, one-line error checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tokenbank.cli import app

runner = CliRunner()


class Cli:
    """Runs the app in-process against one SQLite file in ``tmp_path`` (given as DATABASE_URL)."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "ledger.db"
        self.url = f"sqlite+aiosqlite:///{self.db}"
        self.env = {"DATABASE_URL": self.url, "TOKEN_SYMBOL": "TST", "TOKEN_INITIAL_SUPPLY": "1000"}

    def __call__(self, *args: str, **env: str) -> Result:
        return runner.invoke(app, list(args), env={**self.env, **env})

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def cli(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Cli:
    clean_env.chdir(tmp_path)  # nothing may land in the working tree (the demo writes to the current directory)
    helper = Cli(tmp_path)
    assert helper("init").exit_code == 0
    return helper


def assert_one_line_error(result: Result, code: str) -> str:
    """Exit 1, nothing on stdout, exactly one line on stderr naming the code, and no traceback."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error [{code}]: "), lines[0]
    assert "Traceback" not in result.output
    return lines[0]
