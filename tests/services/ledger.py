"""A small hand-built ledger with fixed timestamps (imported with record_transaction), and the expected
figures worked out by hand, for the analytics and export tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tokenbank import TokenBank

T0 = datetime(2024, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)

ENTRIES: list[dict[str, Any]] = [
    {"type": "mint", "to_user_id": "treasury", "amount": "10000", "timestamp": T0, "reason": "genesis"},
    {"type": "transfer", "from_user_id": "treasury", "to_user_id": "alice", "amount": "100",
     "timestamp": T0 + timedelta(minutes=10), "metadata": {"order": 1, "note": "café, \"quoted\"\nline"}},
    {"type": "transfer", "from_user_id": "treasury", "to_user_id": "bob", "amount": "250.50",
     "timestamp": T0 + H - timedelta(microseconds=1), "idempotency_key": "k-1"},
    {"type": "transfer", "from_user_id": "alice", "to_user_id": "bob", "amount": "30", "timestamp": T0 + H},
    {"type": "transfer", "from_user_id": "bob", "to_user_id": "carol", "amount": "0.01",
     "timestamp": T0 + 1.5 * H},
    {"type": "burn", "from_user_id": "treasury", "amount": "500", "timestamp": T0 + 2.25 * H, "reason": "buyback"},
    {"type": "transfer", "from_user_id": "treasury", "to_user_id": "dave", "amount": "1",
     "timestamp": T0 + D - timedelta(seconds=1)},
    {"type": "transfer", "from_user_id": "carol", "to_user_id": "alice", "amount": "0.01", "timestamp": T0 + D + 3 * H},
    {"type": "mint", "to_user_id": "erin", "amount": "5", "timestamp": T0 + D + 4 * H},
]  # fmt: skip

# Balances after ENTRIES: treasury 9148.50, alice 70.01, bob 280.49, carol 0 (a known account), dave 1, erin 5.


async def build(bank: TokenBank) -> None:
    for entry in ENTRIES:
        await bank.transactions.record_transaction(entry)
