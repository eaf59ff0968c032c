"""Thread safety: 16 threads transfer through one blocking bank; nothing is lost or made up."""

from __future__ import annotations

import random
import threading
from decimal import Decimal

import pytest

from tokenbank import InsufficientBalanceError
from tokenbank.blocking import TokenBank

THREADS = 16
TRANSFERS = 500
ACCOUNTS = [f"acct{n}" for n in range(8)]


@pytest.mark.slow
def test_sixteen_threads_conserve_and_balances_are_exact(sync_bank: TokenBank) -> None:
    for account in ACCOUNTS:
        sync_bank.transfer("treasury", account, "100")
    # Every thread records what it moved; the expected balances are replayed from those records afterwards.
    moved: list[list[tuple[str, str, int]]] = [[] for _ in range(THREADS)]
    refused = [0] * THREADS
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(n: int) -> None:
        rng = random.Random(n)
        start.wait()
        try:
            for _ in range(TRANSFERS):
                src, dst = rng.sample(ACCOUNTS, 2)
                cents = rng.randint(1, 500)
                try:
                    sync_bank.transfer(src, dst, Decimal(cents) / 100)
                except InsufficientBalanceError:
                    refused[n] += 1
                else:
                    moved[n].append((src, dst, cents))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert sum(len(m) for m in moved) + sum(refused) == THREADS * TRANSFERS

    expected = dict.fromkeys(ACCOUNTS, 10_000)
    for records in moved:
        for src, dst, cents in records:
            expected[src] -= cents
            expected[dst] += cents
    balances = sync_bank.get_balances(ACCOUNTS)
    assert {a: int(balances[a] * 100) for a in ACCOUNTS} == expected
    assert sum(balances.values()) + sync_bank.get_balance("treasury") == Decimal(1000)
    assert sync_bank.get_total_supply() == Decimal(1000)
