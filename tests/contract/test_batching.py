"""Natural batching on every backend: concurrent callers share store calls, yet each gets exactly its own
outcome, as if the calls had run one after another."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from tokenbank import IdempotencyConflictError, InsufficientBalanceError, TokenBank, Transaction


async def test_a_mixed_batch_gives_every_caller_its_own_outcome(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 10)

    async def spend(n: int) -> Transaction | Exception:
        try:
            return await bank.transfer("alice", f"shop{n % 3}", 1)
        except InsufficientBalanceError as exc:
            return exc

    async def pay(key: str, amount: int) -> Transaction | Exception:
        try:
            return await bank.transfer("treasury", "bob", amount, idempotency_key=key)
        except IdempotencyConflictError as exc:
            return exc

    calls = [spend(n) for n in range(15)]
    calls += [pay("order-1", 5) for _ in range(5)]  # replays of one request
    calls += [pay("order-2", 7), pay("order-2", 8), pay("order-2", 7)]  # a conflicting reuse of a key
    outcomes = await asyncio.gather(*calls)

    spends, replays, reuse = outcomes[:15], outcomes[15:20], outcomes[20:]
    assert sum(isinstance(o, Transaction) for o in spends) == 10
    assert all(isinstance(o, InsufficientBalanceError | Transaction) for o in spends)
    assert await bank.get_balance("alice") == 0

    assert all(isinstance(o, Transaction) for o in replays)
    assert len({o.id for o in replays if isinstance(o, Transaction)}) == 1

    # Whichever variant of order-2 came first wins; every call with the other amount conflicts.
    winners = [o for o in reuse if isinstance(o, Transaction)]
    assert len({w.id for w in winners}) == 1
    won = winners[0].amount
    for outcome, amount in zip(reuse, (7, 8, 7), strict=True):
        assert isinstance(outcome, Transaction) == (Decimal(amount) == won)
    assert await bank.get_balance("bob") == 5 + won

    history = await bank.transactions.get_transaction_history("alice", limit=100)
    assert sum(1 for t in history.items if t.from_user_id == "alice") == 10
    assert (await bank.verify()).ok


async def test_hot_account_stays_exact_under_concurrent_debits(bank: TokenBank) -> None:
    """Many debits of one account land in the same batches; the account never overdraws."""
    await bank.transfer("treasury", "hot", "50.00")
    results = await asyncio.gather(
        *(bank.transfer("hot", f"user{i}", "0.75") for i in range(100)), return_exceptions=True
    )
    succeeded = [r for r in results if isinstance(r, Transaction)]
    assert len(succeeded) == 66  # 66 * 0.75 = 49.50 <= 50.00 < 67 * 0.75
    assert all(isinstance(r, Transaction | InsufficientBalanceError) for r in results)
    assert await bank.get_balance("hot") == Decimal("0.50")
