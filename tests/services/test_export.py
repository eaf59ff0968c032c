"""Export: CSV and JSON streams of the ledger in seq order that read back equal to the history."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tests.backends import BoundBackend
from tests.services.ledger import T0, D, H, build
from tests.support import open_bank
from tokenbank import InvalidRequestError, TokenBank, Transaction, TransactionType
from tokenbank.cli.export import FIELDS, export, export_transactions
from tokenbank.cli.runtime import CliState
from tokenbank.services.analytics import AnalyticsService


@pytest.fixture
async def ledger(sql_backend: BoundBackend) -> AsyncIterator[TokenBank]:
    """The hand-built ledger, plus a hold, a partial capture and a reversal (written now)."""
    async with open_bank(sql_backend) as bank:
        await build(bank)
        hold = await bank.hold("bob", "carol", "20", expires_in=600, metadata={"cart": [1, 2]})
        await bank.capture(hold.id, "15")
        tx = await bank.transfer("alice", "dave", "7.77", reason="refund me")
        await bank.reverse(tx.id, reason="refunded")
        yield bank


async def full_history(bank: TokenBank) -> list[Transaction]:
    """Every transaction, from the public per-account history (not from the code under test)."""
    seen: dict[str, Transaction] = {}
    for account in ("treasury", "alice", "bob", "carol", "dave", "erin"):
        page = await bank.transactions.get_transaction_history(account, limit=1000)
        assert page.next_cursor is None
        seen.update((tx.id, tx) for tx in page.items)
    return sorted(seen.values(), key=lambda tx: tx.seq)


def from_record(record: dict[str, Any]) -> Transaction:
    def text(key: str) -> str | None:
        value = record[key]
        return None if value in ("", None) else str(value)

    meta = record["metadata"]
    if isinstance(meta, str):
        meta = json.loads(meta) if meta else None
    return Transaction(
        id=record["id"],
        seq=int(record["seq"]),
        type=TransactionType(record["type"]),
        from_user_id=text("from_user_id"),
        to_user_id=text("to_user_id"),
        amount=Decimal(record["amount"]),
        timestamp=datetime.fromisoformat(record["timestamp"]),
        metadata=meta,
        idempotency_key=text("idempotency_key"),
        reason=text("reason"),
        hold_id=text("hold_id"),
        reverses_id=text("reverses_id"),
    )


def read_csv(text: str) -> list[Transaction]:
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    return [from_record(row) for row in rows]


def read_json(text: str) -> list[Transaction]:
    items = json.loads(text)
    for item in items:
        assert isinstance(item["amount"], str)  # amounts are strings, never JSON numbers
    return [from_record(item) for item in items]


@pytest.mark.parametrize(("fmt", "reader"), [("csv", read_csv), ("json", read_json)])
async def test_round_trip_equals_history(ledger: TokenBank, fmt: str, reader: Any) -> None:
    out = io.StringIO(newline="")
    progress: list[int] = []
    written = await export_transactions(
        ledger, out, fmt, chunk_size=3, on_start=progress.append, on_chunk=progress.append
    )
    history = await full_history(ledger)
    assert written == len(history) == 14
    assert progress[0] == 14 and sum(progress[1:]) == 14 and max(progress[1:]) == 3
    assert reader(out.getvalue()) == history
    assert {tx.type for tx in history} >= {TransactionType.HOLD, TransactionType.CAPTURE, TransactionType.VOID,
                                          TransactionType.REVERSAL}  # fmt: skip


@pytest.mark.parametrize(("fmt", "reader"), [("csv", read_csv), ("json", read_json)])
async def test_time_window(ledger: TokenBank, fmt: str, reader: Any) -> None:
    out = io.StringIO(newline="")
    await export_transactions(ledger, out, fmt, since=T0 + H, until=T0 + D)
    expected = [tx for tx in await full_history(ledger) if T0 + H <= tx.timestamp < T0 + D]
    assert [tx.seq for tx in reader(out.getvalue())] == [tx.seq for tx in expected]
    assert len(expected) == 4  # 01:00, 01:30, 02:15 and 23:59:59; not 00:59:59.999999


@pytest.mark.parametrize("fmt", ["csv", "json"])
async def test_empty_export_is_well_formed(ledger: TokenBank, fmt: str) -> None:
    out = io.StringIO(newline="")
    assert await export_transactions(ledger, out, fmt, until=T0) == 0
    if fmt == "json":
        assert json.loads(out.getvalue()) == []
    else:
        assert out.getvalue().strip() == ",".join(FIELDS)


async def test_transactions_written_during_the_export_are_left_out(ledger: TokenBank) -> None:
    analytics = AnalyticsService(ledger)
    through = await analytics.get_last_seq()
    seen: list[int] = []
    async for chunk in analytics.iter_transaction_chunks(through_seq=through, chunk_size=4):
        seen.extend(tx.seq for tx in chunk)
        await ledger.transfer("treasury", "erin", "1")
    assert seen[-1] == through and len(seen) == 14
    assert await analytics.count_transactions(through_seq=through) == 14
    assert await analytics.count_transactions() > 14


async def test_chunk_size_is_checked(ledger: TokenBank) -> None:
    for size in (0, 50_001, True):
        with pytest.raises(InvalidRequestError):
            await export_transactions(ledger, io.StringIO(), "csv", chunk_size=size)


# the command ------------------------------------------------------------------------------------------------
def _app(database_url: str, symbol: str) -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = CliState(database_url=database_url, symbol=symbol)

    app.command()(export)
    return app


@pytest.fixture
def cli_ledger(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> tuple[typer.Typer, str, list[Transaction]]:
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    symbol = "CLI"

    async def make() -> list[Transaction]:
        async with TokenBank(database_url=url, symbol=symbol, hold_sweep_interval=0) as bank:
            await build(bank)
            return await full_history(bank)

    history = asyncio.run(make())
    return _app(url, symbol), url, history


def test_command_to_stdout(cli_ledger: tuple[typer.Typer, str, list[Transaction]]) -> None:
    app, _, history = cli_ledger
    result = CliRunner().invoke(app, ["export", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert read_json(result.stdout) == history
    result = CliRunner().invoke(app, ["export", "--since", "2024-03-01T01:00:00", "--until", "2024-03-02"])
    assert result.exit_code == 0, result.output
    assert [tx.seq for tx in read_csv(result.stdout)] == [tx.seq for tx in history[3:7]]


def test_command_to_file(cli_ledger: tuple[typer.Typer, str, list[Transaction]], tmp_path: Path) -> None:
    app, _, history = cli_ledger
    target = tmp_path / "out" / "ledger.csv"
    target.parent.mkdir()
    args = ["export", "-o", str(target), "--chunk-size", "2", "--until", "2024-03-05T00:00:00Z"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "exported 9 transactions" in result.stderr
    assert result.stdout == ""
    assert read_csv(target.read_text(encoding="utf-8")) == history
    assert sorted(p.name for p in target.parent.iterdir()) == ["ledger.csv"]  # no .part left behind


def test_command_errors_leave_no_file(cli_ledger: tuple[typer.Typer, str, list[Transaction]], tmp_path: Path) -> None:
    app, _, _ = cli_ledger
    target = tmp_path / "bad.json"
    result = CliRunner().invoke(app, ["export", "-o", str(target), "--since", "2024-03-02", "--until", "2024-03-01"])
    assert result.exit_code == 1
    assert "error [invalid_request]: since must be before until" in result.stderr
    assert not target.exists() and not (tmp_path / "bad.json.part").exists()
    result = CliRunner().invoke(app, ["export", "--since", "yesterday"])
    assert result.exit_code == 2
    assert "ISO 8601" in result.stderr


def test_command_refuses_a_missing_database(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    app = _app(f"sqlite+aiosqlite:///{tmp_path}/missing.db", "CLI")
    result = CliRunner().invoke(app, ["export"])
    assert result.exit_code == 1
    assert "configuration_error" in result.stderr
    assert not (tmp_path / "missing.db").exists()
