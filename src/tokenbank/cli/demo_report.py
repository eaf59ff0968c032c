"""``tokenbank demo --report DIR``: what the demo economy looks like afterwards, read through the bank's public API.

Balances come from ``get_balances``, the top accounts from the leaderboard, and the transactions' times from the
SQL ledger's analytics stream (``sql`` mode) or else from every account's history. Reading is done while the
bank is open; drawing afterwards (:func:`write`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tokenbank.bank import TokenBank
from tokenbank.cli import charts
from tokenbank.models import Transaction
from tokenbank.settings import StorageMode

CHUNK = 1000
TOP = 20
FILES = ("balances.png", "volume.png", "top-holders.png")


async def collect(bank: TokenBank, accounts: list[str], since: datetime) -> charts.Economy:
    """Every account's balance, the top holders, every transaction from ``since`` on, and (where the store
    has a SQL ledger) the analytics' percentiles and Gini."""
    info = await bank.get_token_info()
    balances: list[float] = []
    for start in range(0, len(accounts), CHUNK):
        found = await bank.get_balances(accounts[start : start + CHUNK])
        balances.extend(float(value) for value in found.values())
    summary = ""
    if bank.settings.storage_mode is StorageMode.SQL:
        spread = await bank.analytics.get_balance_distribution()
        p = spread.percentiles
        summary = (
            f"bank.analytics: median {spread.median:,.2f}, p90 {p.p90:,.2f}, p99 {p.p99:,.2f}, "
            f"Gini {spread.gini:.3f} ({spread.accounts:,} accounts with a balance)"
        )
    holders = await bank.get_top_holders(TOP)
    return charts.Economy(
        symbol=info.symbol,
        balances=balances,
        excluded=list(info.leaderboard_exclude),
        events=[(tx.timestamp, tx.type.value, float(tx.amount)) for tx in await _transactions(bank, accounts, since)],
        holders=[(holder.user_id, float(holder.balance)) for holder in holders],
        summary=summary,
    )


async def _transactions(bank: TokenBank, accounts: list[str], since: datetime) -> list[Transaction]:
    """The ledger's transactions from ``since``: streamed from the SQL ledger where there is one of record
    (``sql`` mode), else gathered from every account's history (the treasury's included) and deduplicated."""
    if bank.settings.storage_mode is StorageMode.SQL:
        return [tx async for chunk in bank.analytics.iter_transaction_chunks(since) for tx in chunk]
    seen: dict[str, Transaction] = {}
    for account in [bank.settings.treasury_account, *accounts]:
        cursor: str | None = None
        while True:
            page = await bank.transactions.get_transaction_history(account, limit=1000, cursor=cursor, since=since)
            seen.update((tx.id, tx) for tx in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    return list(seen.values())


def write(economy: charts.Economy, out: Path) -> list[Path]:
    """The three charts in ``out`` (created if needed). Raises ConfigurationError without matplotlib."""
    out.mkdir(parents=True, exist_ok=True)
    balances, volume, holders = (out / name for name in FILES)
    return [
        charts.balance_chart(economy, balances),
        charts.volume_chart(economy, volume),
        charts.holders_chart(economy, holders),
    ]
