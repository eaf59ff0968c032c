"""``tokenbank export``: every transaction of a time range as CSV or JSON, streamed in seq order.

The export reads in keyset chunks (constant memory whatever the ledger's size) up to the highest ``seq``
present when it starts, so transactions written meanwhile do not make it ragged. A file is written next
to its target and renamed into place only when complete, so a failed export leaves no partial file.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tokenbank.bank import TokenBank
from tokenbank.cli import render
from tokenbank.cli.runtime import state_of
from tokenbank.errors import ConfigurationError
from tokenbank.models import Transaction
from tokenbank.services.analytics import AnalyticsService
from tokenbank.settings import StorageMode

FIELDS = (
    "seq",
    "id",
    "type",
    "from_user_id",
    "to_user_id",
    "amount",
    "timestamp",
    "idempotency_key",
    "reason",
    "hold_id",
    "reverses_id",
    "metadata",
)
"""Columns of the CSV, and keys of each JSON object, in this order."""

DEFAULT_CHUNK = 5000
EXIT_BROKEN_PIPE = 141
"""Exit code when stdout's reader goes away early: 128 + SIGPIPE, what a shell reports for ``seq 1e9 | head``."""
REDIS_MODE_REFUSAL = (
    "TOKEN_STORAGE_MODE: export reads the SQL ledger of record, which redis mode does not keep (Redis holds only "
    "recent history per account); use 'tokenbank history USER --json' for one account's recent transactions, or "
    "run in hybrid mode (TOKEN_STORAGE_MODE=hybrid, PostgreSQL as the ledger of record) to export everything"
)


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


def transaction_record(tx: Transaction) -> dict[str, Any]:
    """One exported transaction: amount as an exact string, time as ISO 8601 UTC with microseconds."""
    return {
        "seq": tx.seq,
        "id": tx.id,
        "type": tx.type.value,
        "from_user_id": tx.from_user_id,
        "to_user_id": tx.to_user_id,
        "amount": format(tx.amount, "f"),
        "timestamp": render.iso_time(tx.timestamp),
        "idempotency_key": tx.idempotency_key,
        "reason": tx.reason,
        "hold_id": tx.hold_id,
        "reverses_id": tx.reverses_id,
        "metadata": tx.metadata,
    }


class _Writer:
    """Streams records as CSV (a header, then one row each) or as one JSON array."""

    def __init__(self, out: IO[str], fmt: ExportFormat) -> None:
        self._out = out
        self._fmt = fmt
        self._first = True
        self._csv = csv.DictWriter(out, fieldnames=FIELDS) if fmt is ExportFormat.CSV else None

    def start(self) -> None:
        if self._csv is not None:
            self._csv.writeheader()
        else:
            self._out.write("[")

    def write(self, tx: Transaction) -> None:
        record = transaction_record(tx)
        if self._csv is not None:
            meta = record["metadata"]
            record["metadata"] = None if meta is None else json.dumps(meta, ensure_ascii=False, separators=(",", ":"))
            self._csv.writerow({key: "" if value is None else value for key, value in record.items()})
            return
        self._out.write(("\n" if self._first else ",\n") + json.dumps(record, ensure_ascii=False))
        self._first = False

    def finish(self) -> None:
        if self._csv is None:
            self._out.write("]\n" if self._first else "\n]\n")


async def export_transactions(
    bank: TokenBank,
    out: IO[str],
    fmt: ExportFormat | str = ExportFormat.CSV,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    on_start: Callable[[int], None] = lambda total: None,
    on_chunk: Callable[[int], None] = lambda done: None,
) -> int:
    """Write the transactions of ``[since, until)`` to ``out`` in seq order; returns how many.
    ``on_start(total)`` and ``on_chunk(rows)`` report progress. Raises InvalidRequestError for bad bounds
    or chunk size, ConfigurationError when the store has no SQL ledger, StorageError."""
    analytics = AnalyticsService(bank)
    through = await analytics.get_last_seq()
    on_start(await analytics.count_transactions(since, until, through_seq=through))
    writer = _Writer(out, ExportFormat(fmt))
    writer.start()
    written = 0
    async for chunk in analytics.iter_transaction_chunks(since, until, through_seq=through, chunk_size=chunk_size):
        for tx in chunk:
            writer.write(tx)
        written += len(chunk)
        on_chunk(len(chunk))
    writer.finish()
    return written


def parse_moment(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or date-time; without an offset it is taken as UTC. Raises typer.BadParameter."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            "expected an ISO 8601 date or time, e.g. 2024-05-01 or 2024-05-01T12:00:00+02:00", param_hint=option
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def export(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(help="Start (inclusive), ISO 8601; UTC unless an offset is given. Default: the beginning."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="End (exclusive), ISO 8601; UTC unless an offset is given. Default: now.")
    ] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")] = ExportFormat.CSV,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write (replaced when complete); stdout if omitted or '-'."),
    ] = None,
    chunk_size: Annotated[int, typer.Option(min=1, max=50_000, help="Transactions read per query.")] = DEFAULT_CHUNK,
) -> None:
    """Export the token's transactions (all types) in seq order as CSV or JSON; amounts are exact strings.
    A progress bar goes to stderr. Reads the SQL ledger (sql and hybrid modes). When the reader of stdout goes
    away early (``tokenbank export | head``), the export stops quietly with exit code 141, as Unix tools do."""
    state = state_of(ctx)
    start, end = parse_moment(since, "'--since'"), parse_moment(until, "'--until'")
    with state.handled():
        settings = state.settings()
        if settings.storage_mode is StorageMode.REDIS:
            raise ConfigurationError(REDIS_MODE_REFUSAL)
    to_file = output is not None and str(output) != "-"
    target = Path(output) if output is not None and to_file else None
    partial = None if target is None else target.with_name(target.name + ".part")

    async def work(bank: TokenBank) -> int | None:
        try:
            with _open(partial) as out, _progress(state.err) as progress:
                task = progress.add_task("export", total=None)
                return await export_transactions(
                    bank, out, fmt, since=start, until=end, chunk_size=chunk_size,
                    on_start=lambda total: progress.update(task, total=total),
                    on_chunk=lambda done: progress.advance(task, done),
                )  # fmt: skip
        except BrokenPipeError:
            if partial is not None:
                raise
            return None

    try:
        count = state.run(work, settings=settings)
    except BaseException:
        if partial is not None:
            partial.unlink(missing_ok=True)
        raise
    if count is None:
        _silence_stdout()
        raise typer.Exit(EXIT_BROKEN_PIPE)
    if partial is not None and target is not None:
        os.replace(partial, target)
        state.err.print(f"exported {count} transactions to {target}")


def register(app: typer.Typer) -> None:
    app.command()(export)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of what is still buffered for the reader
    that left does not fail a second time."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _open(partial: Path | None) -> AbstractContextManager[IO[str]]:
    if partial is None:
        return nullcontext(sys.stdout)
    # newline="": the csv module writes its own line endings.
    return partial.open("w", encoding="utf-8", newline="")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
