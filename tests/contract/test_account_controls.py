"""Account controls on every store: freezes, closed accounts, maximum balances and spend windows, enforced inside
the store's write (a refused write changes nothing), audited, and exact under concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import pytest_asyncio

from tests.backends import BoundBackend
from tests.support import snapshot
from tokenbank import (
    AccountClosedError,
    AccountFrozenError,
    BatchAbortedError,
    HoldStatus,
    InvalidAmountError,
    InvalidRequestError,
    LimitExceededError,
    TokenBank,
    TransactionStateError,
    TransferRequest,
)
from tokenbank.testing import ManualClock


async def _fund(bank: TokenBank) -> TokenBank:
    await bank.transfer("treasury", "alice", 100)
    await bank.transfer("treasury", "bob", 100)
    return bank


@pytest.fixture
async def funded(bank: TokenBank) -> TokenBank:
    return await _fund(bank)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def refusing_bank(shared_bank: TokenBank) -> TokenBank:
    """``funded``, but once per backend for the table of bad control arguments below: each must change nothing,
    which the test checks."""
    return await _fund(shared_bank)


async def test_a_debit_freeze_stops_what_the_account_sends_and_nothing_else(funded: TokenBank) -> None:
    bank = funded
    hold = await bank.hold("alice", "shop", 10, expires_in=60)
    info = await bank.freeze("alice", reason="chargeback review")
    assert info.frozen is not None and (info.frozen.debits, info.frozen.credits) == (True, False)
    assert info.frozen.reason == "chargeback review" and info.frozen.until is None
    before = await snapshot(bank)
    for attempt in (
        bank.transfer("alice", "bob", 1),
        bank.burn("alice", 1),
        bank.hold("alice", "bob", 1, expires_in=60),
    ):
        with pytest.raises(AccountFrozenError) as caught:
            await attempt
        assert caught.value.param == "from_user_id" and caught.value.http_status == 423
    assert await snapshot(bank) == before
    await bank.transfer("bob", "alice", 5)  # credits still arrive
    await bank.void(hold.id)  # and held funds go back to their owner
    assert await bank.get_balance("alice") == 105
    await bank.unfreeze("alice")
    await bank.transfer("alice", "bob", 1)
    assert (await bank.get_account("alice")).frozen is None


async def test_a_credit_freeze_stops_transfers_mints_and_captures_to_the_account(funded: TokenBank) -> None:
    bank = funded
    hold = await bank.hold("alice", "bob", 10, expires_in=60)
    await bank.freeze("bob", debits=False, credits=True, reason="sanctions check")
    before = await snapshot(bank)
    for attempt in (bank.transfer("alice", "bob", 1), bank.mint("bob", 1), bank.capture(hold.id)):
        with pytest.raises(AccountFrozenError) as caught:
            await attempt
        assert caught.value.param == "to_user_id"
    assert await snapshot(bank) == before
    await bank.transfer("bob", "alice", 1)  # it may still send
    assert (await bank.void(hold.id)).status is HoldStatus.VOIDED


async def test_a_freeze_ends_by_itself_at_until(backend: BoundBackend) -> None:
    clock = ManualClock()
    async with TokenBank(backend.settings(initial_supply=100), clock=clock) as bank:
        await bank.transfer("treasury", "alice", 10)
        await bank.freeze("alice", reason="cool-off", until=clock.now() + timedelta(hours=1))
        with pytest.raises(AccountFrozenError):
            await bank.transfer("alice", "bob", 1)
        clock.advance(timedelta(hours=1, seconds=1))
        assert (await bank.get_account("alice")).frozen is None
        await bank.transfer("alice", "bob", 1)


async def test_a_closed_account_refuses_every_write_for_good(funded: TokenBank) -> None:
    bank = funded
    with pytest.raises(TransactionStateError):
        await bank.close_account("alice")  # it still holds funds
    await bank.transfer("alice", "bob", 100)
    info = await bank.close_account("alice")
    assert info.closed and info.balance == 0
    before = await snapshot(bank)
    for attempt in (bank.transfer("bob", "alice", 1), bank.mint("alice", 1), bank.transfer("alice", "bob", 1)):
        with pytest.raises(AccountClosedError):
            await attempt
    for change in (bank.unfreeze("alice"), bank.set_limits("alice", max_balance=5), bank.close_account("alice")):
        with pytest.raises(AccountClosedError):
            await change
    assert await snapshot(bank) == before
    report = await bank.verify()
    assert report.ok and any(check.name.endswith("closed accounts hold nothing") for check in report.checks)


async def test_max_balance_refuses_the_credit_that_would_pass_it(funded: TokenBank) -> None:
    bank = funded
    await bank.set_limits("bob", max_balance=150)
    await bank.transfer("alice", "bob", 50)  # exactly the maximum
    before = await snapshot(bank)
    with pytest.raises(LimitExceededError) as caught:
        await bank.transfer("alice", "bob", Decimal("0.01"))
    assert "max_balance" in str(caught.value) and caught.value.http_status == 409
    with pytest.raises(LimitExceededError):
        await bank.mint("bob", 1)
    assert await snapshot(bank) == before
    await bank.set_limits("bob")  # no limits any more
    await bank.transfer("alice", "bob", 1)


async def test_spend_window_counts_transfers_burns_and_holds_over_a_rolling_window(backend: BoundBackend) -> None:
    clock = ManualClock()
    async with TokenBank(backend.settings(initial_supply=1000), clock=clock) as bank:
        await bank.transfer("treasury", "alice", 500)
        await bank.set_limits("alice", spend_per_window=(100, 3600))
        first = await bank.transfer("alice", "bob", 60)
        clock.advance(1800)
        await bank.burn("alice", 20)
        await bank.hold("alice", "bob", 20, expires_in=60)
        with pytest.raises(LimitExceededError) as caught:
            await bank.transfer("alice", "bob", Decimal("0.01"))
        assert "spend_per_window" in str(caught.value)
        info = await bank.get_account("alice")
        assert info.spent_in_window == 100 and info.spend_limit is not None and info.spend_limit.seconds == 3600
        await bank.reverse(first.id, reason="refund")  # gives alice her 60 back, but her window still counts them
        clock.advance(1801)  # the first transfer left the window
        await bank.transfer("alice", "bob", 60)
        with pytest.raises(LimitExceededError):
            await bank.transfer("alice", "bob", Decimal("0.01"))
        assert (await bank.get_account("alice")).spent_in_window == 100


async def test_replays_answer_as_before_and_atomic_batches_fail_whole(funded: TokenBank) -> None:
    bank = funded
    first = await bank.transfer("alice", "bob", 1, idempotency_key="order-1")
    await bank.freeze("alice", reason="review")
    again = await bank.transfer("alice", "bob", 1, idempotency_key="order-1")
    assert again.id == first.id and again.replayed
    before = await snapshot(bank)
    results = await bank.transfer_many(
        [TransferRequest("bob", "carol", 1), TransferRequest("alice", "carol", 1)], atomic=True
    )
    assert isinstance(results[0].error, BatchAbortedError) and isinstance(results[1].error, AccountFrozenError)
    assert await snapshot(bank) == before


async def test_every_change_is_audited(funded: TokenBank) -> None:
    bank = funded
    await bank.freeze("alice", reason="r1")
    await bank.set_limits("alice", max_balance=500, spend_per_window=("12.5", 60))
    await bank.unfreeze("alice")
    entries = [e for e in await bank.get_audit_log(limit=20) if e.action.startswith("account.")]
    assert [e.action for e in entries][:3] == ["account.unfreeze", "account.limits", "account.freeze"]
    limits = entries[1].details
    assert limits["user_id"] == "alice" and limits["max"] == "50000" and limits["wa"] == "1250"
    assert limits["df"] is True  # the freeze was still on then


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda bank: bank.freeze("alice", reason=""), InvalidRequestError),
        (lambda bank: bank.freeze("alice", debits=False, reason="x"), InvalidRequestError),
        (lambda bank: bank.freeze("alice", reason="x", until=datetime(2000, 1, 1, tzinfo=UTC)), InvalidRequestError),
        (lambda bank: bank.freeze("alice", reason="x", until=datetime(2999, 1, 1)), InvalidRequestError),
        (lambda bank: bank.freeze("", reason="x"), None),
        (lambda bank: bank.set_limits("alice", max_balance=-1), InvalidAmountError),
        (lambda bank: bank.set_limits("alice", spend_per_window=(10, 0)), InvalidRequestError),
        (lambda bank: bank.set_limits("alice", spend_per_window=(10, 1.5)), InvalidRequestError),
        (lambda bank: bank.set_limits("alice", spend_per_window=(0, 60)), InvalidAmountError),
        (lambda bank: bank.set_limits("alice", spend_per_window=10), InvalidRequestError),
    ],
)
async def test_bad_control_arguments_are_refused_and_change_nothing(refusing_bank: TokenBank, call, error) -> None:  # type: ignore[no-untyped-def]
    bank = refusing_bank
    before = (await bank.get_account("alice"), await snapshot(bank))  # the snapshot has every audit entry's id
    with pytest.raises(error or Exception) as caught:
        await call(bank)
    assert caught.value.param  # names the argument at fault
    assert (await bank.get_account("alice"), await snapshot(bank)) == before


async def test_concurrent_debits_pass_exactly_up_to_the_window_limit(funded: TokenBank) -> None:
    bank = funded
    await bank.set_limits("alice", spend_per_window=("1.37", 3600))

    async def one(n: int) -> bool:
        try:
            await bank.transfer("alice", f"shop{n % 7}", Decimal("0.01"))
        except LimitExceededError:
            return False
        return True

    passed = await asyncio.gather(*(one(n) for n in range(1000)))
    assert sum(passed) == 137
    assert await bank.get_balance("alice") == Decimal("98.63")
    assert (await bank.get_account("alice")).spent_in_window == Decimal("1.37")


async def test_two_hundred_control_changes_at_once_all_apply(bank: TokenBank) -> None:
    """More changes in flight than a connection pool holds: they wait for a connection (a cluster client's pools
    never wait by themselves), none fails."""
    infos = await asyncio.gather(*(bank.set_limits(f"u{n}", max_balance=n + 1) for n in range(200)))
    assert [info.max_balance for info in infos] == list(range(1, 201))
