"""``lot.expiring`` on every backend: one event per lot with something left, TOKEN_LOT_EXPIRY_WARNING before it
expires, however many passes run; the store read under it (``expiring_lots``) and its bounds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.backends import BoundBackend
from tests.feed_support import settle
from tests.webhooks.receiver import Receiver, running_receiver, signature_is_valid
from tokenbank import Settings, TokenBank
from tokenbank.errors import ConfigurationError
from tokenbank.services import lot_warnings
from tokenbank.services.delivery import Dispatcher
from tokenbank.storage.capabilities import LotStore
from tokenbank.storage.durable import event_state_for
from tokenbank.testing import ManualClock

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture
def clock() -> ManualClock:
    # Ahead of the wall clock: an endpoint (stamped with the real time) is older than every transaction.
    return ManualClock(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5))


@pytest.fixture
async def lot_bank(backend: BoundBackend, clock: ManualClock) -> AsyncIterator[TokenBank]:
    async with TokenBank(backend.settings(initial_supply=10_000), clock=clock) as bank:
        yield bank
        assert (await bank.verify()).ok


async def _pass(bank: TokenBank) -> None:
    await settle(bank)
    await bank.webhooks.run_once()


def _warned(receiver: Receiver) -> list[dict[str, Any]]:
    return [r.event["data"] for r in receiver.acknowledged if r.event["type"] == "lot.expiring"]


def _store(bank: TokenBank) -> LotStore:
    assert isinstance(bank.storage, LotStore)
    return bank.storage


async def test_a_lot_is_warned_once_within_the_warning_and_not_before(lot_bank: TokenBank, clock: ManualClock) -> None:
    bank = lot_bank
    with running_receiver() as receiver:
        hook = await bank.webhooks.add(receiver.url, events=["lot.expiring"])
        soon = await bank.grant("alice", "30", expires_at=clock.now() + 2 * HOUR, category="promo")
        later = await bank.grant("alice", "5", expires_at=clock.now() + 3 * DAY)
        spent = await bank.grant("bob", "7", expires_at=clock.now() + 2 * DAY)
        await bank.transfer("alice", "carol", "10")  # taken from the lot expiring first: 20 of it left
        await _pass(bank)
        await _pass(bank)
        [event] = _warned(receiver)
        assert event == {
            "lot_id": soon.id,
            "user_id": "alice",
            "amount": "20.00",
            "expires_at": (clock.now() + 2 * HOUR).isoformat(timespec="microseconds"),
            "category": "promo",
        }
        [request] = receiver.acknowledged
        assert request.event["type"] == "lot.expiring"
        assert signature_is_valid(hook.secret, request.headers, request.body)
        await bank.transfer("bob", "carol", "7")  # bob's lot used up before its warning: never warned
        clock.advance(DAY + HOUR)  # bob's lot (2 days) comes inside the warning, alice's later one (3 days) not yet
        await _pass(bank)
        assert [e["lot_id"] for e in _warned(receiver)] == [soon.id]
        clock.advance(DAY)
        await _pass(bank)
        await _pass(bank)
        assert [e["lot_id"] for e in _warned(receiver)] == [soon.id, later.id]
        deliveries = await bank.webhooks.deliveries(hook.id)
        assert sorted(d.payload["data"]["lot_id"] for d in deliveries) == sorted([soon.id, later.id])
        assert spent.id not in {d.payload["data"]["lot_id"] for d in deliveries}


async def test_a_lot_granted_inside_the_warning_after_the_window_passed_is_warned(
    lot_bank: TokenBank, clock: ManualClock
) -> None:
    bank = lot_bank
    with running_receiver() as receiver:
        await bank.webhooks.add(receiver.url, events=["transaction.created", "lot.expiring"])
        await _pass(bank)  # the window now reaches a day ahead
        short = await bank.grant("alice", "3", expires_at=clock.now() + HOUR)
        await _pass(bank)
        await _pass(bank)
        assert [e["lot_id"] for e in _warned(receiver)] == [short.id]
        # The warning comes right after the grant's own event.
        *_, granted, warned = receiver.acknowledged
        assert (granted.event["type"], granted.event["data"]["id"]) == ("transaction.created", short.id)
        assert warned.event["type"] == "lot.expiring"


async def test_a_grant_read_after_the_window_passed_its_expiry_is_warned(
    lot_bank: TokenBank, clock: ManualClock
) -> None:
    """A grant stamped long before the window reached its expiry, but committed or read only after (a slow
    commit, a worker that fell behind, another process's clock): the pass that reads it warns about it."""
    bank = lot_bank
    with running_receiver() as receiver:
        await bank.webhooks.add(receiver.url, events=["lot.expiring"])
        granted_at = clock.now()  # after the endpoint was added: its events start there
        passed_at = clock.advance(3 * HOUR)
        await _pass(bank)  # the window now reaches a day ahead: past the lot's expiry below
        clock.set(granted_at)  # the grant's own time: 26 hours before its expiry, outside the warning then
        late = await bank.grant("alice", "3", expires_at=passed_at + DAY - HOUR)
        clock.set(passed_at)
        await _pass(bank)
        await _pass(bank)
        assert [e["lot_id"] for e in _warned(receiver)] == [late.id]


async def test_a_first_pass_does_not_warn_about_lots_already_expired(lot_bank: TokenBank, clock: ManualClock) -> None:
    bank = lot_bank
    await bank.grant("alice", "3", expires_at=clock.now() + HOUR)
    clock.advance(2 * HOUR)  # expired, not swept yet (the sweep is off in these tests)
    with running_receiver() as receiver:
        await bank.webhooks.add(receiver.url, events=["lot.expiring"])
        await _pass(bank)
        assert receiver.requests == []


async def test_concurrent_passes_queue_each_warning_once(lot_bank: TokenBank, clock: ManualClock) -> None:
    bank = lot_bank
    with running_receiver() as receiver:
        hook = await bank.webhooks.add(receiver.url, events=["lot.expiring"])
        await _pass(bank)
        lots = [await bank.grant(f"u{n}", "1", expires_at=clock.now() + 2 * DAY + n * HOUR) for n in range(6)]
        await settle(bank)
        clock.advance(DAY + 10 * HOUR)
        state = event_state_for(bank.storage)
        passes = [Dispatcher(bank.ledger, state, batch=2) for _ in range(3)]
        for dispatcher in passes:
            await dispatcher.__aenter__()
        try:
            await asyncio.gather(*(dispatcher.run_once() for dispatcher in passes))
        finally:
            for dispatcher in passes:
                await dispatcher.__aexit__(None, None, None)
        await bank.webhooks.run_once()
        deliveries = await bank.webhooks.deliveries(hook.id)
        assert sorted(d.payload["data"]["lot_id"] for d in deliveries) == sorted(lot.id for lot in lots)
        assert {d.status for d in deliveries} == {"delivered"}
        # Two senders may both post one head (receivers drop repeats by webhook-id); each event is one message.
        assert {r.headers["webhook-id"] for r in receiver.acknowledged} == {d.event_id for d in deliveries}


async def test_no_warning_when_the_setting_is_zero(backend: BoundBackend, clock: ManualClock) -> None:
    async with TokenBank(backend.settings(initial_supply=100, lot_expiry_warning=0), clock=clock) as bank:
        with running_receiver() as receiver:
            await bank.webhooks.add(receiver.url, events=["transaction.created", "lot.expiring"])
            await bank.grant("alice", "3", expires_at=clock.now() + HOUR)
            await _pass(bank)
            clock.advance(HOUR / 2)
            await _pass(bank)
            assert {r.event["type"] for r in receiver.acknowledged} == {"transaction.created"}


async def test_expiring_lots_bounds_order_and_limit(lot_bank: TokenBank, clock: ManualClock) -> None:
    bank, t = lot_bank, clock.now()
    first = await bank.grant("alice", "1", expires_at=t + HOUR)
    tied = sorted([(await bank.grant(user, "2", expires_at=t + 2 * HOUR)).id for user in ("bob", "alice")])
    last = await bank.grant("carol", "3", expires_at=t + 3 * HOUR)
    gone = await bank.grant("dave", "4", expires_at=t + 2 * HOUR)
    await bank.grant("erin", "5")  # no expiry: never
    await bank.transfer("dave", "treasury", "4")  # used up
    store = _store(bank)

    async def ids(after: datetime, until: datetime, limit: int = 10) -> list[str]:
        return [lot.id for lot in await store.expiring_lots(after, until, limit)]

    assert await ids(t, t + 3 * HOUR) == [first.id, *tied, last.id]
    assert await ids(t + HOUR, t + 2 * HOUR) == tied  # after is exclusive, until inclusive
    assert await ids(t + HOUR - timedelta(microseconds=1), t + HOUR) == [first.id]
    assert await ids(t + HOUR, t + 2 * HOUR - timedelta(microseconds=1)) == []
    assert await ids(t, t + 3 * HOUR, limit=2) == [first.id, tied[0]]
    assert gone.id not in await ids(t, t + DAY)
    [lot] = await store.expiring_lots(t + 2 * HOUR, t + 3 * HOUR, 10)
    assert (lot.id, lot.user_id, lot.remaining, lot.amount) == (last.id, "carol", 300, 300)
    assert lot.expires_at == t + 3 * HOUR


async def test_a_full_batch_never_stops_inside_one_moment(lot_bank: TokenBank, clock: ManualClock) -> None:
    bank, t = lot_bank, clock.now()
    moment = t + 2 * HOUR
    tied = [await bank.grant(f"u{n}", "1", expires_at=moment) for n in range(3)]
    after = await bank.grant("z", "1", expires_at=moment + HOUR)
    lots, reached = await lot_warnings.window(_store(bank), t, t + DAY, 2)
    assert sorted(lot.id for lot in lots) == sorted(lot.id for lot in tied) and reached == moment
    lots, reached = await lot_warnings.window(_store(bank), t, t + DAY, 4)
    assert [lot.id for lot in lots] == sorted(lot.id for lot in tied) and reached == moment
    lots, reached = await lot_warnings.window(_store(bank), moment, t + DAY, 4)
    assert [lot.id for lot in lots] == [after.id] and reached == t + DAY


async def test_two_banks_passing_at_once_queue_each_warning_once(
    durable_backend: BoundBackend, clock: ManualClock
) -> None:
    settings = durable_backend.settings(initial_supply=100)
    async with TokenBank(settings, clock=clock) as one, TokenBank(settings, clock=clock) as two:
        with running_receiver() as receiver:
            hook = await one.webhooks.add(receiver.url, events=["lot.expiring"])
            lots = [await one.grant(f"u{n}", "1", expires_at=clock.now() + n * HOUR) for n in range(1, 4)]
            await settle(one)
            await asyncio.gather(one.webhooks.run_once(), two.webhooks.run_once())
            await one.webhooks.run_once()
            deliveries = await two.webhooks.deliveries(hook.id)
            assert sorted(d.payload["data"]["lot_id"] for d in deliveries) == sorted(lot.id for lot in lots)
            assert {r.headers["webhook-id"] for r in receiver.acknowledged} == {d.event_id for d in deliveries}


def test_the_warning_setting(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings.load().lot_expiry_warning == 86400
    clean_env.setenv("TOKEN_LOT_EXPIRY_WARNING", "90.5")
    assert Settings.load().lot_expiry_warning == 90.5
    clean_env.setenv("TOKEN_LOT_EXPIRY_WARNING", "-1")
    with pytest.raises(ConfigurationError, match="TOKEN_LOT_EXPIRY_WARNING"):
        Settings.load()
