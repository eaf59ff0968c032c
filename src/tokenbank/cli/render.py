"""How results look: Rich tables for people, JSON (amounts as strings, never numbers) for scripts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tokenbank.models import Hold, Holder, TokenInfo, Transaction, VerifyReport
from tokenbank.services.event_payloads import transaction_data


def plain(amount: Decimal) -> str:
    """Exact, never scientific: what JSON output carries."""
    return format(amount, "f")


def grouped(amount: Decimal) -> str:
    """For tables: thousands separators, every decimal kept."""
    return format(amount, ",f")


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def iso_time(moment: datetime) -> str:
    """A moment as JSON and CSV show it: UTC, to the microsecond the ledger stores."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def transaction_table(tx: Transaction, symbol: str) -> Table:
    table = Table(title=f"{tx.type.value} #{tx.seq}", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in transaction_data(tx).items():
        if value is None or name in ("seq", "type"):
            continue
        if name == "amount":
            value = f"{grouped(tx.amount)} {symbol}"
        elif name == "metadata":
            value = json.dumps(value, ensure_ascii=False)
        table.add_row(name, Text(str(value)))
    return table


def hold_dict(hold: Hold) -> dict[str, Any]:
    return {
        "id": hold.id,
        "status": hold.status.value,
        "from_user_id": hold.from_user_id,
        "to_user_id": hold.to_user_id,
        "amount": plain(hold.amount),
        "captured_amount": plain(hold.captured_amount),
        "expires_at": iso_time(hold.expires_at),
        "created_at": iso_time(hold.created_at),
        "metadata": hold.metadata,
        "replayed": hold.replayed,
    }


def hold_table(hold: Hold, symbol: str) -> Table:
    amounts = {"amount": hold.amount, "captured_amount": hold.captured_amount}
    return field_table(f"hold ({hold.status.value})", hold_dict(hold), amounts, symbol)


def field_table(title: str, fields: dict[str, Any], amounts: dict[str, Decimal], symbol: str) -> Table:
    """One record as a two-column table: its ``fields`` (a ``*_dict``'s) but ``status`` and ``replayed`` (the title
    says them) and empty ones; ``amounts`` shown grouped, with the token's symbol."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in fields.items():
        if value is None or name in ("status", "replayed"):
            continue
        if name in amounts:
            value = f"{grouped(amounts[name])} {symbol}"
        elif name == "metadata":
            value = json.dumps(value, ensure_ascii=False)
        table.add_row(name, Text(str(value)))
    return table


def history_table(user_id: str, items: list[Transaction], symbol: str) -> Table:
    table = Table(title=f"history of {escape(user_id)} (newest first)", title_justify="left")
    table.add_column("seq", justify="right")
    table.add_column("time (UTC)")
    table.add_column("type")
    table.add_column("from", overflow="fold")
    table.add_column("to", overflow="fold")
    table.add_column(f"amount ({symbol})", justify="right", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for tx in items:
        table.add_row(
            str(tx.seq),
            tx.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
            tx.type.value,
            Text(tx.from_user_id or "-"),
            Text(tx.to_user_id or "-"),
            grouped(tx.amount),
            Text(tx.reason or ""),
        )
    return table


def holder_dict(holder: Holder) -> dict[str, Any]:
    return {"rank": holder.rank, "user_id": holder.user_id, "balance": plain(holder.balance)}


def holders_table(holders: list[Holder], symbol: str, title: str = "leaderboard") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("account", overflow="fold")
    table.add_column(f"balance ({symbol})", justify="right", no_wrap=True)
    for holder in holders:
        table.add_row(str(holder.rank), Text(holder.user_id), grouped(holder.balance))
    return table


def supply_dict(info: TokenInfo, circulating: Decimal) -> dict[str, Any]:
    return {
        "symbol": info.symbol,
        "decimals": info.decimals,
        "total_supply": plain(info.total_supply),
        "circulating_supply": plain(circulating),
        "max_supply": None if info.max_supply is None else plain(info.max_supply),
    }


def supply_table(info: TokenInfo, circulating: Decimal) -> Table:
    table = Table(title=f"{escape(info.name)} ({info.symbol}) supply", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("amount", justify="right")
    table.add_row("total", grouped(info.total_supply))
    table.add_row("circulating", grouped(circulating))
    table.add_row("max", "unlimited" if info.max_supply is None else grouped(info.max_supply))
    return table


def token_dict(info: TokenInfo) -> dict[str, Any]:
    return {
        "symbol": info.symbol,
        "name": info.name,
        "emoji": info.emoji,
        "decimals": info.decimals,
        "treasury_account": info.treasury_account,
        "initial_supply": plain(info.initial_supply),
        "total_supply": plain(info.total_supply),
        "max_supply": None if info.max_supply is None else plain(info.max_supply),
        "created_at": iso_time(info.created_at),
    }


def token_table(info: TokenInfo, database: str) -> Table:
    table = Table(title=f"token {info.symbol}", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("name", Text(info.name + (f" {info.emoji}" if info.emoji else "")))
    table.add_row("decimals", str(info.decimals))
    table.add_row("treasury", Text(info.treasury_account))
    table.add_row("total supply", grouped(info.total_supply))
    table.add_row("max supply", "unlimited" if info.max_supply is None else grouped(info.max_supply))
    table.add_row("database", Text(database))
    return table


def verify_dict(report: VerifyReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks],
    }


def verify_table(report: VerifyReport) -> Table:
    table = Table(title="verify: " + ("ok" if report.ok else "FAILED"), title_justify="left")
    table.add_column("check", overflow="fold")
    table.add_column("result", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        table.add_row(check.name, "[green]ok[/]" if check.ok else "[bold red]FAILED[/]", Text(check.detail))
    return table
