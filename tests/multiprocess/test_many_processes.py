"""Four OS processes write one token at once, on every durable store: transfers under idempotency keys they all
share, holds expiring under four racing sweepers, captures and voids near the expiry. Afterwards: exact
conservation, each key applied once, each hold settled exactly once, and nothing but typed refusals on the way.
One of the accounts is hot (split into slices on PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.backends import BoundBackend
from tests.multiprocess.writer import ACCOUNTS, keyed_transfer
from tests.support import history
from tokenbank import HoldStatus, Settings, TokenBank, Transaction, TransactionType

ROOT = Path(__file__).resolve().parents[2]
PROCESSES, OPERATIONS, FUNDING = 4, 100, 200


def _run_writers(options: dict[str, Any]) -> list[dict[str, Any]]:
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.multiprocess.writer", json.dumps(options), str(n), str(OPERATIONS)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    outputs = [(writer.communicate(timeout=240), writer.returncode) for writer in writers]
    assert [err for (_, err), code in outputs if code != 0] == []
    return [json.loads(out.strip().splitlines()[-1]) for (out, _), _ in outputs]


async def _journal(bank: TokenBank) -> list[Transaction]:
    seen: dict[str, Transaction] = {}
    for account in ACCOUNTS:
        for tx in await history(bank, account):
            seen[tx.id] = tx
    return list(seen.values())


async def test_four_processes_write_one_token(durable_backend: BoundBackend) -> None:
    options = {
        **durable_backend.backend.options(durable_backend.scope),
        "symbol": durable_backend.scope.symbol,
        "hold_sweep_interval": 0.05,
        # One of the accounts is hot: on PostgreSQL its transfers take one of its slices, its holds all of them.
        "hot_accounts": {ACCOUNTS[0]: 4},
    }
    settings = Settings.load(**options)
    async with TokenBank(settings) as bank:
        for account in ACCOUNTS:
            await bank.mint(account, FUNDING)

    results = await asyncio.to_thread(_run_writers, options)
    assert [r["unexpected"] for r in results] == [[]] * PROCESSES
    refusals = Counter[str]()
    for result in results:
        refusals.update(result["refusals"])
    assert set(refusals) <= {"insufficient_balance", "hold_state"}, refusals

    async with TokenBank(settings.model_copy(update={"hold_sweep_interval": 0})) as bank:
        await asyncio.sleep(0.2)  # every hold's expiry has passed
        await bank.expire_holds()
        total = await bank.get_total_supply()
        assert total == FUNDING * len(ACCOUNTS)
        balances = await bank.get_balances(ACCOUNTS)
        held = [await bank.get_held_balance(account) for account in ACCOUNTS]
        assert sum(balances.values()) + sum(held) == total
        assert sum(held) == 0

        journal = await _journal(bank)
        keyed = Counter(tx.idempotency_key for tx in journal if tx.idempotency_key)
        assert keyed and set(keyed.values()) == {1}  # each shared key applied once, by whichever process won
        for tx in journal:
            if tx.idempotency_key:
                source, target, amount = keyed_transfer(int(tx.idempotency_key.removeprefix("shared-")))
                assert (tx.from_user_id, tx.to_user_id, tx.amount) == (source, target, Decimal(amount))

        settled = Counter(tx.hold_id for tx in journal if tx.type in (TransactionType.CAPTURE, TransactionType.VOID))
        hold_ids = [hold_id for result in results for hold_id in result["holds"]]
        assert len(hold_ids) > PROCESSES * 10
        for hold_id in hold_ids:
            hold = await bank.get_hold(hold_id)
            assert hold.status is not HoldStatus.PENDING
            assert settled[hold_id] == 1, (hold_id, hold.status, settled[hold_id])

        report = await bank.verify()
        assert report.ok, report
