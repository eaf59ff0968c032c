"""Credit lots on every store: grants that expire or mature, spent soonest expiry first by every debit, given back
by voids and reversals, expired into the breakage account; vesting schedules made of them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.backends import BoundBackend
from tokenbank import (
    InsufficientBalanceError,
    InvalidAccountError,
    InvalidAmountError,
    InvalidRequestError,
    LotMove,
    SupplyCapExceededError,
    TokenBank,
    Transaction,
    TransactionType,
)
from tokenbank.lots import vesting_tranches
from tokenbank.testing import ManualClock

DAY = timedelta(days=1)


def _moves(*pairs: tuple[str, int | str]) -> tuple[LotMove, ...]:
    return tuple(LotMove(lot_id, Decimal(amount)) for lot_id, amount in pairs)


async def _open(backend: BoundBackend, clock: ManualClock, **settings: Any) -> TokenBank:
    bank = TokenBank(backend.settings(initial_supply=10_000, **settings), clock=clock)
    await bank.open()
    return bank


async def _last(bank: TokenBank, user: str, kind: str) -> Transaction:
    """The account's latest transaction of one type."""
    page = await bank.transactions.get_transaction_history(user, limit=1, types=[kind])
    return page.items[0]


async def _conserved(bank: TokenBank, *users: str) -> None:
    """Every account's balance (lots included) and held funds add up to the supply; each account's detail adds up."""
    total = Decimal(0)
    for user in ("treasury", "breakage", *users):
        detail = await bank.get_balance_detail(user)
        assert detail.available == await bank.get_balance(user)
        assert all(lot.amount > 0 for lot in detail.lots)
        total += detail.available + detail.pending + detail.expired + detail.held
    assert total == await bank.get_total_supply()


async def test_debits_take_spendable_lots_soonest_expiry_first_then_the_plain_balance(backend: BoundBackend) -> None:
    clock = ManualClock()
    bank = await _open(backend, clock)
    try:
        now = clock.now()
        await bank.transfer("treasury", "alice", 100)
        a = await bank.grant("alice", 10, expires_at=now + 10 * DAY, category="promo")
        b = await bank.grant("alice", 20, expires_at=now + 5 * DAY)
        c = await bank.grant("alice", 30)
        d = await bank.grant("alice", 15, expires_at=now + 20 * DAY)
        e = await bank.grant("alice", 5, expires_at=now + 3 * DAY, available_at=now + DAY)
        assert a.type is TransactionType.GRANT and a.category == "promo" and a.expires_at == now + 10 * DAY
        assert e.available_at == now + DAY and a.from_user_id is None
        assert await bank.get_total_supply() == 10_080
        assert await bank.get_balance("alice") == 175  # the pending 5 is not spendable yet
        assert [lot.id for lot in await bank.get_lots("alice")] == [e.id, b.id, a.id, d.id, c.id]

        first = await bank.transfer("alice", "bob", 40)
        assert first.lot_moves == _moves((b.id, 20), (a.id, 10), (d.id, 10))
        second = await bank.transfer("alice", "bob", 40)
        assert second.lot_moves == _moves((d.id, 5), (c.id, 30))  # then 5 of the plain balance
        lots = await bank.get_lots("alice")
        assert [(lot.id, lot.amount, lot.granted) for lot in lots] == [(e.id, 5, 5)]
        assert await bank.get_balance("alice") == 95
        assert await bank.get_balance("bob") == 80 and await bank.get_lots("bob") == []

        burn = await bank.burn("alice", 95)
        assert burn.lot_moves == ()
        with pytest.raises(InsufficientBalanceError):
            await bank.transfer("alice", "bob", 1)  # only the pending lot is left
        clock.advance(DAY)  # the lot matures: spendable with no write
        assert await bank.get_balance("alice") == 5
        assert (await bank.transfer("alice", "bob", 5)).lot_moves == _moves((e.id, 5))
        await _conserved(bank, "alice", "bob")
    finally:
        await bank.close()


async def test_an_expired_lot_is_locked_then_moved_to_the_breakage_account_once(backend: BoundBackend) -> None:
    clock = ManualClock()
    bank = await _open(backend, clock)
    try:
        lot = await bank.grant("alice", 30, expires_at=clock.now() + DAY)
        await bank.transfer("alice", "bob", 10)
        clock.advance(DAY - timedelta(microseconds=1))
        assert await bank.get_balance("alice") == 20
        assert await bank.expire_lots() == 0
        clock.advance(timedelta(microseconds=1))  # exactly the expiry: no longer spendable
        assert await bank.get_balance("alice") == 0
        detail = await bank.get_balance_detail("alice")
        assert (detail.available, detail.expired, [x.id for x in detail.expiring]) == (0, 20, [lot.id])
        with pytest.raises(InsufficientBalanceError):
            await bank.transfer("alice", "bob", 1)
        supply = await bank.get_total_supply()
        results = await asyncio.gather(bank.expire_lots(), bank.expire_lots(), bank.expire_lots())
        assert sum(results) == 1  # concurrent sweepers: one expiry
        assert await bank.expire_lots() == 0
        assert await bank.get_lots("alice") == []
        assert await bank.get_balance("breakage") == 20 and await bank.get_total_supply() == supply
        expire = await _last(bank, "alice", "expire")
        assert (expire.type, expire.from_user_id, expire.to_user_id, expire.amount) == (
            TransactionType.EXPIRE,
            "alice",
            "breakage",
            20,
        )
        assert expire.lot_moves == _moves((lot.id, 20))
        await _conserved(bank, "alice", "bob")
    finally:
        await bank.close()


async def test_a_hold_reserves_from_lots_and_a_void_gives_the_same_lots_back(backend: BoundBackend) -> None:
    clock = ManualClock()
    bank = await _open(backend, clock)
    try:
        await bank.transfer("treasury", "alice", 50)
        soon = await bank.grant("alice", 10, expires_at=clock.now() + DAY)
        later = await bank.grant("alice", 20, expires_at=clock.now() + 2 * DAY)
        hold = await bank.hold("alice", "shop", 25, expires_in=3600)
        hold_tx = await _last(bank, "alice", "hold")
        assert hold_tx.lot_moves == _moves((soon.id, 10), (later.id, 15))
        assert [(lot.id, lot.amount) for lot in await bank.get_lots("alice")] == [(later.id, 5)]
        await bank.void(hold.id)
        void = await _last(bank, "alice", "void")
        assert void.lot_moves == _moves((later.id, -15), (soon.id, -10))  # the last lot taken comes back first
        assert [(lot.id, lot.amount) for lot in await bank.get_lots("alice")] == [(soon.id, 10), (later.id, 20)]

        partial = await bank.hold("alice", "shop", 25, expires_in=3600)
        await bank.capture(partial.id, 12)  # the captured 12 count as spent from the soonest lots
        assert [(lot.id, lot.amount) for lot in await bank.get_lots("alice")] == [(later.id, 18)]
        assert await bank.get_balance("alice") == 68 and await bank.get_balance("shop") == 12
        await _conserved(bank, "alice", "shop")
    finally:
        await bank.close()


async def test_a_reversal_gives_the_sender_back_the_lots_its_transfer_took(backend: BoundBackend) -> None:
    clock = ManualClock()
    bank = await _open(backend, clock)
    try:
        lot = await bank.grant("alice", 30, expires_at=clock.now() + DAY)
        await bank.transfer("treasury", "alice", 5)
        sent = await bank.transfer("alice", "bob", 33)
        assert sent.lot_moves == _moves((lot.id, 30))
        reversal = await bank.reverse(sent.id, reason="refund")
        assert reversal.lot_moves == _moves((lot.id, -30))
        assert [(x.id, x.amount) for x in await bank.get_lots("alice")] == [(lot.id, 30)]
        assert await bank.get_balance("alice") == 35 and await bank.get_balance("bob") == 0
        await _conserved(bank, "alice", "bob")
    finally:
        await bank.close()


async def test_a_funded_grant_moves_tokens_and_a_refused_one_changes_nothing(backend: BoundBackend) -> None:
    clock = ManualClock()
    bank = await _open(backend, clock, max_supply=10_050)
    try:
        funded = await bank.grant("alice", 40, from_user_id="treasury", expires_at=clock.now() + DAY)
        assert funded.from_user_id == "treasury" and await bank.get_total_supply() == 10_000
        assert await bank.get_balance("treasury") == 9_960
        with pytest.raises(InsufficientBalanceError):
            await bank.grant("bob", 41, from_user_id="alice")
        with pytest.raises(SupplyCapExceededError):
            await bank.grant("bob", 51)
        assert await bank.get_balance("bob") == 0 and await bank.get_lots("bob") == []
        paid = await bank.grant("bob", 15, from_user_id="alice")  # the funder's own lot pays, soonest first
        assert paid.lot_moves == _moves((funded.id, 15))
        assert [(x.amount, x.expires_at) for x in await bank.get_lots("bob")] == [(15, None)]
        await _conserved(bank, "alice", "bob")
    finally:
        await bank.close()


async def test_a_grant_sent_again_with_its_key_is_applied_once(backend: BoundBackend) -> None:
    clock = ManualClock()
    bank = await _open(backend, clock)
    try:
        expiry = clock.now() + DAY
        first = await bank.grant("alice", 10, expires_at=expiry, idempotency_key="promo-1")
        again = await bank.grant("alice", 10, expires_at=expiry, idempotency_key="promo-1")
        assert again.replayed and again.id == first.id
        assert [lot.id for lot in await bank.get_lots("alice")] == [first.id]
    finally:
        await bank.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        ({"amount": 0}, InvalidAmountError, "amount"),
        ({"amount": "-1"}, InvalidAmountError, "amount"),
        ({"to_user_id": ""}, InvalidAccountError, "to_user_id"),
        ({"from_user_id": "alice"}, InvalidRequestError, "from_user_id"),
        ({"expires_at": "tomorrow"}, InvalidRequestError, "expires_at"),
        ({"expires_at": -DAY}, InvalidRequestError, "expires_at"),
        ({"expires_at": DAY, "available_at": DAY}, InvalidRequestError, "available_at"),
        ({"available_at": "soon"}, InvalidRequestError, "available_at"),
        ({"available_at": datetime(1969, 12, 31, tzinfo=UTC)}, InvalidRequestError, "available_at"),
        ({"expires_at": datetime(9999, 6, 1, tzinfo=UTC)}, InvalidRequestError, "expires_at"),
        ({"category": ""}, InvalidRequestError, "category"),
        ({"category": "x" * 65}, InvalidRequestError, "category"),
        ({"category": 7}, InvalidRequestError, "category"),
    ],
)
async def test_a_bad_grant_is_a_typed_error_and_changes_nothing(
    backend: BoundBackend, kwargs: dict[str, Any], error: type[Exception], param: str
) -> None:
    clock = ManualClock()
    bank = await _open(backend, clock)
    try:
        args: dict[str, Any] = {"to_user_id": "alice", "amount": 5}
        for key, value in kwargs.items():  # a timedelta is a moment relative to now
            args[key] = clock.now() + value if isinstance(value, timedelta) else value
        with pytest.raises(error) as raised:
            await bank.grant(**args)
        assert getattr(raised.value, "param", None) == param
        assert await bank.get_total_supply() == 10_000 and await bank.get_lots("alice") == []
    finally:
        await bank.close()


async def test_a_vesting_matures_tranche_by_tranche_after_its_cliff(backend: BoundBackend) -> None:
    clock = ManualClock()
    bank = await _open(backend, clock)
    try:
        start = clock.now()
        vesting = await bank.vest("alice", 1000, start=start, duration=12 * 30 * DAY, cliff=3 * 30 * DAY,
                                  interval=30 * DAY)  # fmt: skip
        cents = [100_000 * k // 12 - 100_000 * (k - 1) // 12 for k in range(4, 13)]  # exact in base units
        assert [lot.amount for lot in vesting.lots] == [250, *(Decimal(c).scaleb(-2) for c in cents)]
        assert sum(lot.amount for lot in vesting.lots) == 1000
        assert await bank.get_balance("alice") == 0
        clock.advance(3 * 30 * DAY)
        assert await bank.get_balance("alice") == 250
        clock.advance(30 * DAY)
        assert await bank.get_balance("alice") == Decimal(100_000 * 4 // 12).scaleb(-2)
        clock.advance(12 * 30 * DAY)
        assert await bank.get_balance("alice") == 1000
        await _conserved(bank, "alice")
    finally:
        await bank.close()


def test_vesting_tranches_are_exact_and_merge_before_the_cliff() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    tranches = vesting_tranches(100, start, timedelta(days=10), timedelta(days=3), timedelta(days=3))
    assert tranches == [
        (start + timedelta(days=3), 25),
        (start + timedelta(days=6), 25),
        (start + timedelta(days=9), 25),
        (start + timedelta(days=10), 25),
    ]
    assert sum(units for _, units in vesting_tranches(7, start, timedelta(days=3), timedelta(0), DAY)) == 7
    with pytest.raises(InvalidRequestError):
        vesting_tranches(2, start, timedelta(days=3), timedelta(0), DAY)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"duration": timedelta(days=10), "interval": timedelta(days=11)}, "interval"),
        ({"duration": timedelta(days=10), "interval": DAY, "cliff": timedelta(days=11)}, "cliff"),
        ({"duration": timedelta(days=3650 * 1000)}, "duration"),
        ({"duration": timedelta(seconds=2000), "interval": timedelta(seconds=1)}, "interval"),
        ({"duration": timedelta(0)}, "duration"),
        ({"start": None}, "start"),
    ],
)
async def test_a_bad_vesting_is_a_typed_error_and_changes_nothing(
    backend: BoundBackend, kwargs: dict[str, Any], param: str
) -> None:
    clock = ManualClock()
    bank = await _open(backend, clock)
    try:
        args: dict[str, Any] = {"start": clock.now(), "duration": timedelta(days=90), "interval": timedelta(days=30)}
        with pytest.raises(InvalidRequestError) as raised:
            await bank.vest("alice", 100, **{**args, **kwargs})
        assert raised.value.param == param
        assert await bank.get_total_supply() == 10_000 and await bank.get_lots("alice") == []
    finally:
        await bank.close()


async def test_a_stake_locks_lots_and_its_unstake_gives_them_back(backend: BoundBackend) -> None:
    clock = ManualClock()
    bank = await _open(backend, clock)
    try:
        lot = await bank.grant("alice", 30, expires_at=clock.now() + 60 * DAY)
        stake = await bank.stake("alice", 20, until=clock.now() + DAY)
        assert [(x.id, x.amount) for x in await bank.get_lots("alice")] == [(lot.id, 10)]
        clock.advance(DAY)
        await bank.unstake(stake.id)
        assert [(x.id, x.amount) for x in await bank.get_lots("alice")] == [(lot.id, 30)]
        await _conserved(bank, "alice")
    finally:
        await bank.close()


async def test_concurrent_debits_spend_exactly_the_lots_in_spend_order(backend: BoundBackend) -> None:
    """1,000 debits of 1 at once against 20 lots of 40 (mixed expiries, a few without) and no plain balance:
    exactly 800 pass, every lot is spent whole, nothing goes below zero."""
    clock = ManualClock()
    bank = await _open(backend, clock)
    try:
        for index in range(20):
            expiry = None if index % 5 == 0 else clock.now() + (index % 7 + 1) * DAY
            await bank.grant("alice", 40, expires_at=expiry)

        async def debit(n: int) -> bool:
            try:
                await bank.transfer("alice", f"shop{n % 10}", 1)
            except InsufficientBalanceError:
                return False
            return True

        results = await asyncio.gather(*(debit(n) for n in range(1000)))
        assert sum(results) == 800
        assert await bank.get_balance("alice") == 0 and await bank.get_lots("alice") == []
        await _conserved(bank, "alice", *(f"shop{n}" for n in range(10)))
    finally:
        await bank.close()


async def test_partly_spent_lots_are_always_the_last_in_spend_order(backend: BoundBackend) -> None:
    """Under concurrent debits the lots left are a suffix of the spend order: no later lot was touched while an
    earlier one still had something."""
    clock = ManualClock()
    bank = await _open(backend, clock)
    try:
        granted = [
            await bank.grant("alice", 10, expires_at=None if i % 4 == 0 else clock.now() + (i % 5 + 1) * DAY)
            for i in range(12)
        ]
        order = [lot.id for lot in await bank.get_lots("alice")]
        assert sorted(order) == sorted(tx.id for tx in granted)
        await asyncio.gather(*(bank.transfer("alice", "bob", 3) for _ in range(23)))  # 69 of 120
        left = await bank.get_lots("alice")
        assert [lot.id for lot in left] == order[-len(left) :]
        assert sum(lot.amount for lot in left) == 51 and left[0].amount == 1
        assert all(lot.amount == 10 for lot in left[1:])
    finally:
        await bank.close()


async def test_sweepers_of_two_banks_expire_each_lot_once(durable_backend: BoundBackend) -> None:
    """Two banks on one store (two app processes, or an app and a worker) sweeping at once: every expired lot moves
    to the breakage account once."""
    clock = ManualClock()
    first = await _open(durable_backend, clock)
    second = TokenBank(durable_backend.settings(initial_supply=10_000), clock=clock)
    await second.open()
    try:
        for index in range(30):
            await first.grant(f"user{index % 3}", 10, expires_at=clock.now() + (index % 4 + 1) * DAY)
        clock.advance(5 * DAY)
        counts = await asyncio.gather(*(bank.expire_lots() for bank in (first, second, first, second)))
        assert sum(counts) == 30
        assert await second.get_balance("breakage") == 300 and await first.get_total_supply() == 10_300
        assert [await first.get_lots(f"user{index}") for index in range(3)] == [[], [], []]
        assert (await second.verify()).ok
    finally:
        await second.close()
        await first.close()


@pytest.mark.parametrize("clocked", [True, False], ids=["bank-clock", "store-clock"])
async def test_an_account_with_many_lots_spends_exactly_as_the_rules_say(backend: BoundBackend, clocked: bool) -> None:
    """60 lots (more than a store reads whole: expiries shared by several lots, lots without one, pending and expired
    ones among them) debited down to a few: every debit's moves, the balance and each refusal match a plain model
    of the rules (spendable lots soonest expiry first, equal expiries by id, none last; pending and expired locked).
    With the bank's own clock, and with the store's (writes without a timestamp take other paths on some stores)."""
    clock = ManualClock()
    if clocked:
        bank = await _open(backend, clock)
    else:
        bank = TokenBank(backend.settings(initial_supply=10_000))
        await bank.open()
        clock.set(datetime.now(UTC))
    try:
        start = clock.now()
        soon = timedelta(hours=1) if clocked else timedelta(seconds=3)  # room for a loaded machine
        terms: dict[str, tuple[datetime | None, datetime | None]] = {}  # lot id -> (expires_at, available_at)
        for index in range(60):
            expiry = None if index % 6 == 0 else start + (index % 9 + 1) * DAY + (index % 2) * timedelta(hours=12)
            available = start + 4 * DAY if index % 10 == 3 else None
            if index % 13 == 5:
                expiry = (start if clocked else datetime.now(UTC)) + soon  # expired below, not swept: locked
            lot = await bank.grant("alice", 10 + index % 7, expires_at=expiry, available_at=available)
            terms[lot.id] = (expiry, available)
        await bank.transfer("treasury", "alice", 25)
        if clocked:
            clock.advance(2 * soon)
        else:  # the store's clock: wait until the soon-expiring lots have expired
            last = max(expiry for expiry, _ in terms.values() if expiry is not None and expiry < start + DAY)
            await asyncio.sleep(max(0.0, (last - datetime.now(UTC)).total_seconds()) + 0.2)
            clock.set(datetime.now(UTC))

        def spendable(lot_id: str) -> bool:
            expiry, available = terms[lot_id]
            now = clock.now()
            return (expiry is None or expiry > now) and (available is None or available <= now)

        def expected(remaining: dict[str, int], amount: int) -> tuple[tuple[str, int], ...]:
            order = sorted(remaining, key=lambda i: (terms[i][0] is None, terms[i][0] or start, i))
            moves, left = [], amount
            for lot_id in order:
                if left and remaining[lot_id] and spendable(lot_id):
                    taken = min(remaining[lot_id], left)
                    moves.append((lot_id, taken))
                    left -= taken
            return tuple(moves)

        def locked(remaining: dict[str, int]) -> int:
            return sum(units for lot_id, units in remaining.items() if not spendable(lot_id))

        remaining = {lot.id: int(lot.amount) for lot in await bank.get_lots("alice")}
        assert set(remaining) == set(terms)
        plain, refused = 25, 0
        first = plain + sum(remaining.values()) - locked(remaining) + 1  # just over: pending and expired lots lock
        expiring = sum(units for lot_id, units in remaining.items() if spendable(lot_id) and terms[lot_id][0])
        # ...then every spendable lot with an expiry and into the second without one, then smaller debits.
        for step, amount in enumerate((first, expiring + 15, 7, 40, 3, 60, 2, 75, 180, 33, 90, 400)):
            if step == 5 and clocked:
                clock.advance(5 * DAY)  # the pending lots mature; lots of the first days expire
            balance = plain + sum(remaining.values()) - locked(remaining)
            assert await bank.get_balance("alice") == balance, step
            if amount > balance:
                with pytest.raises(InsufficientBalanceError):
                    await bank.transfer("alice", "bob", amount)
                refused += 1
                continue
            moves = expected(remaining, amount)
            tx = await bank.transfer("alice", "bob", amount)
            assert tx.lot_moves == _moves(*moves), step
            for lot_id, taken in moves:
                remaining[lot_id] -= taken
            plain -= amount - sum(taken for _, taken in moves)
            assert {lot.id: int(lot.amount) for lot in await bank.get_lots("alice")} == {
                i: left for i, left in remaining.items() if left
            }
        assert refused >= 2 and plain >= 0
        await _conserved(bank, "alice", "bob")
    finally:
        await bank.close()
