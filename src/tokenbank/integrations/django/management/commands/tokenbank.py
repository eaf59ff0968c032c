"""``python manage.py tokenbank ...``: the ledger of ``settings.TOKENBANK`` from the command line."""

from __future__ import annotations

import argparse
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tokenbank.blocking import TokenBank
from tokenbank.errors import TokenBankError
from tokenbank.integrations.django import get_bank


class Command(BaseCommand):  # type: ignore[misc]
    help = "The token ledger: balance, transfer, mint, burn, supply, top, history, verify."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")
        balance = commands.add_parser("balance", help="spendable balance of an account")
        balance.add_argument("user_id")
        transfer = commands.add_parser("transfer", help="move tokens between accounts")
        transfer.add_argument("from_user_id")
        transfer.add_argument("to_user_id")
        transfer.add_argument("amount")
        transfer.add_argument("--reason")
        transfer.add_argument("--idempotency-key")
        mint = commands.add_parser("mint", help="create tokens (audited)")
        mint.add_argument("to_user_id")
        mint.add_argument("amount")
        mint.add_argument("--reason")
        burn = commands.add_parser("burn", help="destroy tokens (audited)")
        burn.add_argument("user_id")
        burn.add_argument("amount")
        burn.add_argument("--reason")
        commands.add_parser("supply", help="total and circulating supply")
        top = commands.add_parser("top", help="the leaderboard")
        top.add_argument("--limit", type=int, default=10)
        history = commands.add_parser("history", help="an account's transactions, newest first")
        history.add_argument("user_id")
        history.add_argument("--limit", type=int, default=20)
        commands.add_parser("verify", help="check the ledger invariants")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            self._run(get_bank(), action, options)
        except TokenBankError as exc:
            raise CommandError(f"error [{exc.code}]: {exc}") from exc

    def _run(self, bank: TokenBank, action: str, o: dict[str, Any]) -> None:
        symbol = bank.settings.symbol
        if action == "balance":
            self.stdout.write(f"{o['user_id']}: {bank.get_balance(o['user_id'])} {symbol}")
        elif action == "transfer":
            tx = bank.transfer(
                o["from_user_id"], o["to_user_id"], o["amount"], reason=o["reason"],
                idempotency_key=o["idempotency_key"],
            )  # fmt: skip
            self.stdout.write(f"{tx.id}: {tx.from_user_id} -> {tx.to_user_id} {tx.amount} {symbol}")
        elif action == "mint":
            tx = bank.mint(o["to_user_id"], o["amount"], reason=o["reason"])
            self.stdout.write(f"{tx.id}: minted {tx.amount} {symbol} to {tx.to_user_id}")
        elif action == "burn":
            tx = bank.burn(o["user_id"], o["amount"], reason=o["reason"])
            self.stdout.write(f"{tx.id}: burned {tx.amount} {symbol} from {tx.from_user_id}")
        elif action == "supply":
            self.stdout.write(f"total: {bank.get_total_supply()} {symbol}")
            self.stdout.write(f"circulating: {bank.get_circulating_supply()} {symbol}")
        elif action == "top":
            for holder in bank.get_top_holders(o["limit"]):
                self.stdout.write(f"{holder.rank}. {holder.user_id}: {holder.balance} {symbol}")
        elif action == "history":
            for tx in bank.transactions.get_transaction_history(o["user_id"], limit=o["limit"]).items:
                row = {"id": tx.id, "type": tx.type.value, "from": tx.from_user_id, "to": tx.to_user_id}
                self.stdout.write(json.dumps({**row, "amount": str(tx.amount), "at": tx.timestamp.isoformat()}))
        else:  # verify
            report = bank.verify()
            for check in report.checks:
                self.stdout.write(f"{'ok  ' if check.ok else 'FAIL'} {check.name} {check.detail or ''}".rstrip())
            if not report.ok:
                raise CommandError("the ledger invariants do not hold")
