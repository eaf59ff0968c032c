"""The blocking bank: the async bank's behaviour from synchronous code, from any thread."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.backends import BoundBackend
from tokenbank import (
    AccountFrozenError,
    BalanceUpdate,
    InsufficientBalanceError,
    LimitExceededError,
    Settings,
    TransferRequest,
)
from tokenbank.blocking import TokenBank


def test_reads_writes_and_errors(sync_bank: TokenBank) -> None:
    tx = sync_bank.transfer("treasury", "alice", "10.50", reason="welcome")
    assert tx.amount == Decimal("10.50")
    assert sync_bank.get_balance("alice") == Decimal("10.50")
    assert sync_bank.balances.get_balance("alice") == Decimal("10.50")
    assert sync_bank.transactions.get_transaction_by_id(tx.id).id == tx.id
    assert [t.id for t in sync_bank.transactions.get_transaction_history("alice").items] == [tx.id]
    with pytest.raises(InsufficientBalanceError):
        sync_bank.transfer("alice", "bob", "11")
    hold = sync_bank.hold("alice", "bob", "1", expires_in=timedelta(minutes=5))
    assert sync_bank.get_held_balance("alice") == Decimal("1.00")
    sync_bank.capture(hold.id)
    results = sync_bank.transfer_many([TransferRequest("alice", "bob", "1"), TransferRequest("alice", "carol", "1")])
    assert all(r.ok for r in results)
    assert sync_bank.get_total_supply() == Decimal("1000.00")
    assert sync_bank.get_top_holders(1)[0].user_id in {"alice", "bob"}
    assert sync_bank.balances.get_formatted_balance("bob").startswith("2")
    assert sync_bank.health().status == "ok"
    assert sync_bank.analytics.get_last_seq() >= 1
    chunks = list(sync_bank.analytics.iter_transaction_chunks(chunk_size=2))
    assert sum(len(chunk) for chunk in chunks) == sync_bank.analytics.count_transactions()


def test_account_controls(sync_bank: TokenBank) -> None:
    sync_bank.transfer("treasury", "alice", "10")
    assert sync_bank.freeze("alice", reason="review").frozen is not None
    with pytest.raises(AccountFrozenError):
        sync_bank.transfer("alice", "bob", "1")
    assert sync_bank.accounts.unfreeze("alice").frozen is None
    info = sync_bank.set_limits("bob", max_balance="1", spend_per_window=("5", 60))
    assert info.max_balance == Decimal(1) and info.spend_limit is not None and info.spend_limit.seconds == 60
    with pytest.raises(LimitExceededError):
        sync_bank.transfer("alice", "bob", "2")
    assert sync_bank.close_account("carol").closed
    assert sync_bank.get_account("alice").balance == Decimal(10)
    assert sync_bank.accounts.set_limits("dave", overdraft="3").overdraft == 3
    sync_bank.transfer("dave", "alice", "3")
    assert sync_bank.get_account("dave").balance == -3


def test_every_thread_and_many_requests_share_one_loop(sync_bank: TokenBank) -> None:
    # What a sync web server does: each request on some thread, the bank opened on another. asyncio.run per
    # request would bind the pool to a loop it then closes ("Event loop is closed" on the next request).
    errors: list[BaseException] = []

    def request(n: int) -> None:
        try:
            sync_bank.transfer("treasury", f"user{n % 3}", "1")
            sync_bank.get_balance(f"user{n % 3}")
        except BaseException as exc:
            errors.append(exc)

    for batch in range(5):
        threads = [threading.Thread(target=request, args=(batch * 10 + n,)) for n in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    assert sum(sync_bank.get_balances(["user0", "user1", "user2"]).values()) == Decimal(50)


def test_balance_events_arrive_as_callbacks_on_a_thread(sync_bank: TokenBank) -> None:
    seen: list[tuple[BalanceUpdate, str, Decimal]] = []
    done = threading.Event()

    def on_update(update: BalanceUpdate) -> None:
        # A callback may call the blocking bank itself: it runs on the event thread, not the loop's.
        seen.append((update, threading.current_thread().name, sync_bank.get_balance("alice")))
        done.set()

    unsubscribe = sync_bank.balances.subscribe_to_balance_updates("alice", on_update)
    sync_bank.transfer("treasury", "alice", "3")
    assert done.wait(10)
    update, thread_name, balance = seen[0]
    assert update.user_id == "alice"
    assert update.change == Decimal("3.00")
    assert thread_name.startswith("tokenbank-events")
    assert balance == Decimal("3.00")
    unsubscribe()
    sync_bank.balances.subscribe_to_balance_updates("alice", on_update)
    sync_bank.balances.unsubscribe_from_balance_updates("alice", on_update)
    sync_bank.balances.subscribe_to_balance_updates("alice", on_update)
    sync_bank.balances.unsubscribe_from_balance_updates("alice")
    done.clear()
    sync_bank.transfer("treasury", "alice", "1")
    assert sync_bank.get_balance("alice") == Decimal("4.00")
    assert not done.wait(0.5)
    assert len(seen) == 1


def test_async_callbacks_run_on_the_banks_loop(sync_bank: TokenBank) -> None:
    seen = threading.Event()

    async def on_update(update: BalanceUpdate) -> None:
        seen.set()

    unsubscribe = sync_bank.balances.subscribe_to_balance_updates("bob", on_update)
    sync_bank.transfer("treasury", "bob", "1")
    assert seen.wait(10)
    unsubscribe()


def test_lifecycle(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    bank = TokenBank(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/tb.db", initial_supply=5))
    bank.open()
    assert bank.token_created
    assert bank.decimals == 2
    assert bank.settings.initial_supply == 5
    assert "initial_supply" in bank.given_settings
    assert bank.settings_drift == ()
    assert bank.run(bank.async_bank.get_balance, "treasury") == Decimal("5.00")
    bank.close()
    bank.close()
    with pytest.raises(RuntimeError, match="closed"):
        bank.get_balance("treasury")

    clean_env.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/tb.db")
    with TokenBank.from_env() as again:
        assert again.get_balance("treasury") == Decimal("5.00")


def test_a_bad_setting_fails_at_construction_and_leaves_no_thread(clean_env: pytest.MonkeyPatch) -> None:
    before = threading.active_count()
    with pytest.raises(Exception, match="TOKEN_DECIMALS"):
        TokenBank(decimals=99)
    assert threading.active_count() == before


def test_a_failed_open_closes(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    from tokenbank import TokenNotInitializedError

    bank = TokenBank(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/tb.db", auto_create=False))
    with pytest.raises(TokenNotInitializedError), bank:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        bank.get_balance("x")


def test_calling_the_bank_on_its_own_loop_is_refused(sync_bank: TokenBank) -> None:
    async def inside() -> None:
        sync_bank.get_balance("treasury")

    with pytest.raises(RuntimeError, match="own event loop thread"):
        sync_bank.run(inside)


def test_postgres_requests_from_fresh_threads(sync_backend: BoundBackend) -> None:
    # The reported failure was on PostgreSQL: asyncpg connections belong to the loop that made them.
    with TokenBank(sync_backend.settings(initial_supply=100)) as bank:
        for n in range(20):
            thread = threading.Thread(target=bank.transfer, args=("treasury", "alice", "1"), name=f"request-{n}")
            thread.start()
            thread.join()
        assert bank.get_balance("alice") == Decimal(20)
