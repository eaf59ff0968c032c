"""Credit lots in SQLite's store, at the Storage level: grants, the spend order of every debit, holds and reversals
giving back, expiry, the LotStore reads and verify's ``lots`` check (docs/lots.md states the rules)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.backends import BoundBackend, Scope, by_name, params
from tokenbank import TokenBank
from tokenbank.ids import new_id
from tokenbank.status import Status
from tokenbank.storage.base import ControlsRecord, HistoryQuery, OpKind, OpResult, Storage, WriteOp
from tokenbank.storage.capabilities import LotStore
from tokenbank.testing import ManualClock

START = datetime.fromisoformat("2026-03-01T12:00:00+00:00")
DAY = timedelta(days=1)


@pytest.fixture(params=params(by_name("sqlite", "sqlite-memory")))
def sqlite_backend(request: pytest.FixtureRequest, tmp_path: object, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    """The SQLite entries of the behaviour suite's backends (the store whose writer this file tests)."""
    return request.param.bind(Scope(tmp_path))  # type: ignore[no-any-return, arg-type]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def bank(sqlite_backend: BoundBackend, clock: ManualClock) -> AsyncIterator[TokenBank]:
    """1000.00 minted to ``treasury`` (100000 base units); every invariant must hold after the test."""
    async with TokenBank(sqlite_backend.settings(initial_supply=1000), clock=clock) as opened:
        yield opened
        report = await opened.verify()
        assert report.ok, f"verify() after the test: {report}"


class Lots:
    """Ops by hand, stamped with the bank's clock, and the store's reads."""

    def __init__(self, bank: TokenBank, clock: ManualClock) -> None:
        self.bank = bank
        self.clock = clock
        self.store: Storage = bank.storage
        assert isinstance(self.store, LotStore)
        self.lots: LotStore = self.store

    def op(self, kind: OpKind, **fields: Any) -> WriteOp:
        fields.setdefault("tx_id", new_id())
        return WriteOp(kind=kind, timestamp=self.clock.now(), **fields)

    async def apply(self, *ops: WriteOp, atomic: bool = False) -> list[OpResult]:
        return await self.store.apply(list(ops), atomic=atomic)

    async def one(self, kind: OpKind, **fields: Any) -> OpResult:
        [result] = await self.apply(self.op(kind, **fields))
        return result

    async def grant(
        self, to: str, amount: int, *, expires_in: timedelta | None = None, available_in: timedelta | None = None,
        funder: str | None = None, **fields: Any,
    ) -> OpResult:  # fmt: skip
        now = self.clock.now()
        return await self.one(
            OpKind.GRANT, to_user_id=to, amount=amount, from_user_id=funder,
            expires_at=None if expires_in is None else now + expires_in,
            available_at=None if available_in is None else now + available_in, **fields,
        )  # fmt: skip

    async def lot(self, to: str, amount: int, **fields: Any) -> str:
        result = await self.grant(to, amount, **fields)
        assert result.status is Status.OK, result
        return result.transactions[0].id

    async def transfer(self, sender: str, receiver: str, amount: int) -> OpResult:
        return await self.one(OpKind.TRANSFER, from_user_id=sender, to_user_id=receiver, amount=amount)

    async def remaining(self, user_id: str) -> dict[str, int]:
        return {lot.id: lot.remaining for lot in await self.lots.get_lots(user_id)}

    async def balance(self, user_id: str) -> int:
        return (await self.store.get_balances([user_id]))[user_id]

    async def spendable(self, user_id: str) -> int:
        return (await self.lots.spendable_balances([user_id], self.clock.now()))[user_id]

    async def sql(self, statement: str, **params: Any) -> list[Any]:
        def work(conn: sa.Connection) -> list[Any]:
            result = conn.execute(sa.text(statement), params)
            return list(result.all()) if result.returns_rows else []

        return await self.store.run_sync(work, write=True)  # type: ignore[attr-defined, no-any-return]

    async def supply(self) -> int:
        token = await self.store.get_token()
        assert token is not None
        return token.total_supply


@pytest.fixture
def lots(bank: TokenBank, clock: ManualClock) -> Lots:
    return Lots(bank, clock)


def _ids(n: int) -> list[str]:
    return sorted(new_id() for _ in range(n))


# grants ------------------------------------------------------------------------------------------------------
async def test_a_minted_grant_creates_a_lot_and_raises_the_supply(lots: Lots, clock: ManualClock) -> None:
    before = await lots.supply()
    result = await lots.grant("alice", 500, expires_in=30 * DAY, available_in=DAY, category="promo")
    assert result.status is Status.OK
    [tx] = result.transactions
    assert (tx.type, tx.from_user_id, tx.to_user_id, tx.amount, tx.lots) == ("grant", None, "alice", 500, ())
    assert (tx.expires_at, tx.available_at, tx.category) == (START + 30 * DAY, START + DAY, "promo")
    assert tx.to_balance_after == 500 and tx.from_balance_after is None
    assert await lots.supply() == before + 500
    [lot] = await lots.lots.get_lots("alice")
    assert (lot.id, lot.user_id, lot.amount, lot.remaining) == (tx.id, "alice", 500, 500)
    assert (lot.expires_at, lot.available_at, lot.category, lot.created_at) == (
        START + 30 * DAY, START + DAY, "promo", START,
    )  # fmt: skip
    # The reads return what the write answered.
    assert await lots.store.get_transaction(tx.id) == tx
    assert await lots.store.history(HistoryQuery(user_id="alice", limit=10)) == [tx]
    has_lots = "SELECT has_lots FROM tb_accounts WHERE token = :t AND user_id = 'alice'"
    assert await lots.sql(has_lots, t=lots.bank.settings.symbol) == [(1,)]


async def test_a_minted_grant_past_the_max_supply_is_refused_like_a_mint(lots: Lots, bank: TokenBank) -> None:
    await bank.configure_token(max_supply=1500)
    assert (await lots.grant("alice", 50_001)).status is Status.SUPPLY_CAP_EXCEEDED
    [mint] = await lots.apply(lots.op(OpKind.MINT, to_user_id="alice", amount=50_001))
    assert mint.status is Status.SUPPLY_CAP_EXCEEDED
    assert await lots.lots.get_lots("alice") == []
    assert (await lots.grant("alice", 50_000)).status is Status.OK
    assert await lots.supply() == 150_000


async def test_a_funded_grant_debits_the_funder_and_takes_its_lots_first(lots: Lots) -> None:
    own = await lots.lot("sponsor", 300, expires_in=DAY)
    assert (await lots.transfer("treasury", "sponsor", 1000)).status is Status.OK
    supply = await lots.supply()
    result = await lots.grant("alice", 800, funder="sponsor", expires_in=7 * DAY)
    assert result.status is Status.OK
    [tx] = result.transactions
    assert (tx.from_user_id, tx.to_user_id, tx.amount, tx.lots) == ("sponsor", "alice", 800, ((own, 300),))
    assert (tx.from_balance_after, tx.to_balance_after) == (500, 800)
    assert await lots.supply() == supply  # funded: nothing minted
    assert await lots.remaining("sponsor") == {}
    assert await lots.remaining("alice") == {tx.id: 800}
    assert await lots.store.get_transaction(tx.id) == tx


async def test_a_refused_funded_grant_changes_nothing(lots: Lots) -> None:
    own = await lots.lot("sponsor", 300)
    pending = await lots.lot("sponsor", 200, available_in=DAY)
    supply = await lots.supply()
    # 500 in the balance, but 200 of it is not available yet.
    result = await lots.grant("alice", 400, funder="sponsor")
    assert result.status is Status.INSUFFICIENT_BALANCE and not result.transactions
    assert await lots.store.get_balances(["sponsor", "alice"]) == {"sponsor": 500, "alice": 0}
    assert await lots.remaining("sponsor") == {own: 300, pending: 200}
    assert await lots.lots.get_lots("alice") == []
    assert await lots.supply() == supply
    assert await lots.sql("SELECT count(*) FROM tb_lots WHERE user_id = 'alice'") == [(0,)]
    # In an atomic batch the whole batch is rolled back.
    first = lots.op(OpKind.GRANT, to_user_id="bob", amount=100, from_user_id="sponsor")
    second = lots.op(OpKind.GRANT, to_user_id="carol", amount=300, from_user_id="sponsor")
    results = await lots.apply(first, second, atomic=True)
    assert [r.status for r in results] == [Status.BATCH_ABORTED, Status.INSUFFICIENT_BALANCE]
    assert await lots.remaining("sponsor") == {own: 300, pending: 200}
    assert await lots.store.get_balances(["sponsor", "bob"]) == {"sponsor": 500, "bob": 0}


async def test_a_funded_grant_obeys_the_accounts_controls(lots: Lots, bank: TokenBank) -> None:
    await bank.freeze("treasury", reason="audit")
    assert (await lots.grant("alice", 100, funder="treasury")).status is Status.DEBITS_FROZEN
    await bank.unfreeze("treasury")
    await bank.freeze("alice", debits=False, credits=True, reason="audit")
    assert (await lots.grant("alice", 100, funder="treasury")).status is Status.CREDITS_FROZEN
    assert (await lots.grant("alice", 100)).status is Status.CREDITS_FROZEN
    await bank.unfreeze("alice")
    await bank.set_limits("alice", max_balance=2)
    assert (await lots.grant("alice", 201)).status is Status.MAX_BALANCE_EXCEEDED
    await bank.set_limits("treasury", spend_per_window=(3, 3600))
    assert (await lots.grant("bob", 200, funder="treasury")).status is Status.OK
    assert (await lots.grant("bob", 101, funder="treasury")).status is Status.SPEND_LIMIT_EXCEEDED
    assert (await lots.grant("bob", 100, funder="treasury")).status is Status.OK


async def test_a_replayed_grant_returns_the_stored_transaction(lots: Lots) -> None:
    fields: dict[str, Any] = {"to_user_id": "alice", "amount": 100, "idempotency_key": "g-1", "fingerprint": "f1",
                              "expires_at": START + DAY}  # fmt: skip
    [first] = await lots.apply(lots.op(OpKind.GRANT, **fields))
    [again] = await lots.apply(lots.op(OpKind.GRANT, **fields))
    assert first.status is Status.OK and again.status is Status.REPLAYED
    assert again.transactions == first.transactions
    [conflict] = await lots.apply(lots.op(OpKind.GRANT, **{**fields, "fingerprint": "f2"}))
    assert conflict.status is Status.IDEMPOTENCY_CONFLICT
    assert await lots.remaining("alice") == {first.transactions[0].id: 100}
    # A resend of the same op (same id) is replayed too, never applied twice.
    op = lots.op(OpKind.GRANT, to_user_id="bob", amount=10)
    await lots.apply(op)
    [resent] = await lots.apply(WriteOp(kind=OpKind.GRANT, tx_id=op.tx_id, to_user_id="bob", amount=10))
    assert resent.status is Status.REPLAYED
    assert await lots.balance("bob") == 10


# spending -------------------------------------------------------------------------------------------------------
async def test_debits_take_lots_in_spend_order_then_the_plain_balance(lots: Lots, clock: ManualClock) -> None:
    assert (await lots.transfer("treasury", "alice", 1000)).status is Status.OK  # plain
    # Two lots of the same expiry: the smaller id first, whatever the grant order.
    small, large = _ids(2)
    await lots.lot("alice", 100, expires_in=2 * DAY, tx_id=large)
    await lots.lot("alice", 100, expires_in=2 * DAY, tx_id=small)
    later = await lots.lot("alice", 100, expires_in=10 * DAY)
    sooner = await lots.lot("alice", 100, expires_in=DAY)
    never_a, never_b = _ids(2)
    await lots.lot("alice", 100, tx_id=never_b)
    await lots.lot("alice", 100, tx_id=never_a)
    pending = await lots.lot("alice", 100, expires_in=3 * DAY, available_in=timedelta(hours=1))
    order = [sooner, small, large, pending, later, never_a, never_b]
    assert [lot.id for lot in await lots.lots.get_lots("alice")] == order  # spend order, availability aside
    assert await lots.balance("alice") == 1700
    assert await lots.spendable("alice") == 1600

    result = await lots.transfer("alice", "bob", 350)
    assert result.status is Status.OK
    assert result.transactions[0].lots == ((sooner, 100), (small, 100), (large, 100), (later, 50))
    assert result.transactions[0].from_balance_after == 1350
    result = await lots.transfer("alice", "bob", 300)  # burns and holds follow the same order
    assert result.transactions[0].lots == ((later, 50), (never_a, 100), (never_b, 100))
    result = await lots.one(OpKind.BURN, from_user_id="alice", amount=60)
    assert result.transactions[0].lots == ()  # only the pending lot is left: the plain balance pays
    assert await lots.remaining("alice") == {pending: 100}
    assert await lots.balance("alice") == 990
    clock.advance(timedelta(hours=1))
    result = await lots.one(OpKind.BURN, from_user_id="alice", amount=60)
    assert result.transactions[0].lots == ((pending, 60),)
    assert await lots.store.get_transaction(result.transactions[0].id) == result.transactions[0]
    assert await lots.remaining("bob") == {}  # a receiver is credited plain


async def test_pending_and_expired_lots_are_locked(lots: Lots, clock: ManualClock) -> None:
    await lots.lot("alice", 100, available_in=DAY)
    assert await lots.balance("alice") == 100 and await lots.spendable("alice") == 0
    assert (await lots.transfer("alice", "bob", 1)).status is Status.INSUFFICIENT_BALANCE
    hold = lots.op(OpKind.HOLD, from_user_id="alice", to_user_id="bob", amount=1, hold_id=new_id(),
                   expires_at=START + DAY)  # fmt: skip
    assert (await lots.apply(hold))[0].status is Status.INSUFFICIENT_BALANCE
    assert (await lots.one(OpKind.BURN, from_user_id="alice", amount=1)).status is Status.INSUFFICIENT_BALANCE
    clock.advance(DAY)
    assert await lots.spendable("alice") == 100
    assert (await lots.transfer("alice", "bob", 40)).status is Status.OK
    await lots.lot("carol", 100, expires_in=DAY)
    clock.advance(DAY)
    assert await lots.balance("carol") == 100 and await lots.spendable("carol") == 0
    assert (await lots.transfer("carol", "bob", 1)).status is Status.INSUFFICIENT_BALANCE


async def test_an_overdraft_lets_the_balance_go_below_what_lots_lock(lots: Lots, bank: TokenBank) -> None:
    await bank.set_limits("alice", overdraft=1)  # 100 base units
    await lots.lot("alice", 500, available_in=DAY)
    assert (await lots.transfer("alice", "bob", 101)).status is Status.INSUFFICIENT_BALANCE
    result = await lots.transfer("alice", "bob", 100)
    assert result.status is Status.OK and result.transactions[0].lots == ()
    assert await lots.balance("alice") == 400 and await lots.spendable("alice") == -100


# holds and reversals ----------------------------------------------------------------------------------------------
async def _hold(lots: Lots, amount: int, *, to: str = "shop") -> OpResult:
    hold_id = new_id()
    [result] = await lots.apply(lots.op(OpKind.HOLD, from_user_id="alice", to_user_id=to, amount=amount,
                                        hold_id=hold_id, expires_at=lots.clock.now() + DAY))  # fmt: skip
    assert result.status is Status.OK
    return result


async def test_a_void_gives_back_to_the_lots_the_hold_took(lots: Lots) -> None:
    first = await lots.lot("alice", 30, expires_in=DAY)
    second = await lots.lot("alice", 40, expires_in=2 * DAY)
    await lots.transfer("treasury", "alice", 100)
    held = await _hold(lots, 120)
    assert held.transactions[0].lots == ((first, 30), (second, 40))
    hold_id = held.transactions[0].hold_id
    rows = await lots.sql("SELECT lots FROM tb_holds WHERE id = :h", h=hold_id)
    assert rows == [(f'[["{first}","30"],["{second}","40"]]',)]
    assert await lots.remaining("alice") == {}
    void = await lots.one(OpKind.VOID, hold_id=hold_id)
    assert void.status is Status.OK
    assert void.transactions[0].lots == ((second, -40), (first, -30))
    assert await lots.remaining("alice") == {first: 30, second: 40}
    assert await lots.balance("alice") == 170
    assert await lots.store.get_transaction(void.transactions[0].id) == void.transactions[0]


async def test_a_partial_capture_releases_the_rest_from_the_last_lots(lots: Lots) -> None:
    await lots.lot("alice", 30, expires_in=DAY)
    second = await lots.lot("alice", 40, expires_in=2 * DAY)
    held = await _hold(lots, 70)
    result = await lots.one(OpKind.CAPTURE, hold_id=held.transactions[0].hold_id, amount=45)
    assert result.status is Status.OK
    capture, release = result.transactions
    assert (capture.type, capture.amount, capture.lots) == ("capture", 45, ())
    assert (release.type, release.amount, release.lots) == ("void", 25, ((second, -25),))
    assert await lots.remaining("alice") == {second: 25}
    assert await lots.remaining("shop") == {}
    assert await lots.store.get_balances(["alice", "shop"]) == {"alice": 25, "shop": 45}


async def test_a_void_after_expiry_gives_back_to_the_expired_lot_for_the_sweep(lots: Lots, clock: ManualClock) -> None:
    lot = await lots.lot("alice", 50, expires_in=DAY)
    held = await _hold(lots, 50)
    clock.advance(2 * DAY)
    void = await lots.one(OpKind.VOID, hold_id=held.transactions[0].hold_id, reason="expired")
    assert void.transactions[0].lots == ((lot, -50),)
    assert await lots.spendable("alice") == 0
    assert await lots.lots.expired_lots(clock.now(), 10) == [(lot, "alice")]
    swept = await lots.one(OpKind.EXPIRE, lot_id=lot, from_user_id="alice", to_user_id="breakage")
    assert swept.transactions[0].amount == 50


async def test_a_reversal_debits_the_receiver_in_spend_order_and_gives_back_to_the_senders_lots(lots: Lots) -> None:
    a1 = await lots.lot("alice", 60, expires_in=DAY)
    a2 = await lots.lot("alice", 60)
    b1 = await lots.lot("bob", 30, expires_in=DAY)
    sent = await lots.transfer("alice", "bob", 100)
    assert sent.transactions[0].lots == ((a1, 60), (a2, 40))
    result = await lots.one(OpKind.REVERSE, reverses_id=sent.transactions[0].id, reason="mistake")
    assert result.status is Status.OK
    [tx] = result.transactions
    assert tx.lots == ((b1, 30), (a1, -60), (a2, -40))
    assert await lots.remaining("alice") == {a1: 60, a2: 60}
    assert await lots.remaining("bob") == {}
    assert await lots.store.get_balances(["alice", "bob"]) == {"alice": 120, "bob": 30}
    assert await lots.store.get_transaction(tx.id) == tx


async def test_a_reversal_is_refused_when_the_receivers_spendable_balance_is_short(lots: Lots) -> None:
    await lots.transfer("treasury", "alice", 100)
    sent = await lots.transfer("alice", "bob", 100)
    await lots.lot("bob", 50, available_in=DAY)
    await lots.transfer("bob", "carol", 1)
    result = await lots.one(OpKind.REVERSE, reverses_id=sent.transactions[0].id, reason="mistake")
    assert result.status is Status.INSUFFICIENT_BALANCE


# expiry ---------------------------------------------------------------------------------------------------------
async def test_expire_moves_what_is_left_to_the_breakage_account_once(lots: Lots, clock: ManualClock) -> None:
    lot = await lots.lot("alice", 100, expires_in=DAY)
    keep = await lots.lot("alice", 100)
    await lots.transfer("alice", "bob", 30)
    expire = {"lot_id": lot, "from_user_id": "alice", "to_user_id": "breakage"}
    not_yet = await lots.one(OpKind.EXPIRE, **expire)
    assert (not_yet.status, not_yet.transactions) == (Status.OK, ())
    assert await lots.lots.expired_lots(clock.now(), 10) == []
    clock.advance(DAY)  # expires_at <= now: expired
    assert await lots.lots.expired_lots(clock.now(), 10) == [(lot, "alice")]
    await lots.bank.freeze("alice", debits=True, credits=True, reason="no control applies to an expiry")
    result = await lots.one(OpKind.EXPIRE, **expire)
    assert result.status is Status.OK
    [tx] = result.transactions
    assert (tx.type, tx.from_user_id, tx.to_user_id, tx.amount, tx.lots) == (
        "expire", "alice", "breakage", 70, ((lot, 70),),
    )  # fmt: skip
    assert (tx.from_balance_after, tx.to_balance_after) == (100, 70)
    assert await lots.store.get_balances(["alice", "breakage"]) == {"alice": 100, "breakage": 70}
    assert await lots.remaining("alice") == {keep: 100}
    assert await lots.lots.expired_lots(clock.now(), 10) == []
    assert await lots.store.get_transaction(tx.id) == tx
    again = await lots.one(OpKind.EXPIRE, **expire)
    assert (again.status, again.transactions) == (Status.OK, ())
    assert await lots.balance("breakage") == 70


async def test_expire_of_a_lot_not_the_owners_or_unknown_does_nothing(lots: Lots, clock: ManualClock) -> None:
    lot = await lots.lot("alice", 100, expires_in=DAY)
    clock.advance(2 * DAY)
    for fields in ({"lot_id": lot, "from_user_id": "bob"}, {"lot_id": new_id(), "from_user_id": "alice"}):
        result = await lots.one(OpKind.EXPIRE, to_user_id="breakage", audit_action="lots.expire", **fields)
        assert (result.status, result.transactions) == (Status.OK, ())
    assert await lots.balance("alice") == 100


# reads ------------------------------------------------------------------------------------------------------------
async def test_expired_lots_soonest_first_with_a_limit(lots: Lots, clock: ManualClock) -> None:
    late = await lots.lot("alice", 10, expires_in=3 * DAY)
    early = await lots.lot("bob", 10, expires_in=DAY)
    middle = await lots.lot("alice", 10, expires_in=2 * DAY)
    await lots.lot("carol", 10)
    await lots.lot("carol", 10, expires_in=9 * DAY)
    spent = await lots.lot("dave", 10, expires_in=DAY)
    await lots.transfer("dave", "erin", 10)
    assert spent not in await lots.remaining("dave")
    clock.advance(3 * DAY)
    assert await lots.lots.expired_lots(clock.now(), 10) == [(early, "bob"), (middle, "alice"), (late, "alice")]
    assert await lots.lots.expired_lots(clock.now(), 2) == [(early, "bob"), (middle, "alice")]
    assert await lots.lots.expired_lots(START, 10) == []


async def test_spendable_balances_in_one_read(lots: Lots, clock: ManualClock) -> None:
    await lots.transfer("treasury", "alice", 500)
    await lots.lot("alice", 100, available_in=DAY)
    await lots.lot("alice", 200, expires_in=DAY)
    await lots.lot("bob", 50)
    now = clock.now()
    got = await lots.lots.spendable_balances(["alice", "bob", "treasury", "nobody"], now)
    assert got == {"alice": 700, "bob": 50, "treasury": 99_500, "nobody": 0}
    assert await lots.lots.spendable_balances(["alice"], now + DAY) == {"alice": 600}  # available, and expired
    assert await lots.lots.spendable_balances([], now) == {}


async def test_an_account_without_lots_keeps_its_behaviour(lots: Lots) -> None:
    result = await lots.transfer("treasury", "alice", 100)
    assert result.transactions[0].lots == ()
    row = (
        "SELECT t.lots, a.has_lots FROM tb_transactions t JOIN tb_accounts a ON a.token = t.token "
        "AND a.user_id = 'alice' WHERE t.id = :i"
    )
    assert await lots.sql(row, i=result.transactions[0].id) == [(None, 0)]
    assert await lots.lots.get_lots("alice") == []
    assert (await lots.transfer("alice", "bob", 101)).status is Status.INSUFFICIENT_BALANCE


async def test_close_account_is_refused_while_a_lot_has_something_left(lots: Lots, bank: TokenBank) -> None:
    await bank.set_limits("alice", overdraft=1)
    await lots.transfer("alice", "bob", 100)  # the plain part owes 100
    lot = await lots.lot("alice", 100)  # balance 0, one lot of 100
    assert await lots.balance("alice") == 0
    close = ControlsRecord(closed=True)
    assert await lots.store.set_controls("alice", close, ("close",), "close") is Status.ACCOUNT_NOT_EMPTY
    assert await lots.remaining("alice") == {lot: 100}
    await lots.transfer("alice", "bob", 100)
    await lots.transfer("bob", "alice", 100)  # plain again: nothing left in lots
    assert await lots.remaining("alice") == {}
    assert await lots.store.set_controls("alice", close, ("close",), "close") is Status.OK


async def test_verify_checks_every_lot_stays_within_its_grant(lots: Lots, bank: TokenBank) -> None:
    lot = await lots.lot("alice", 100, expires_in=DAY)
    await lots.lot("bob", 100, funder="treasury")
    report = await bank.verify()
    assert report.ok
    [check] = [c for c in report.checks if c.name.endswith("lots")]
    assert check.ok
    await lots.sql("UPDATE tb_lots SET remaining = 101 WHERE id = :i", i=lot)
    report = await bank.verify()
    [check] = [c for c in report.checks if c.name.endswith("lots")]
    assert not check.ok and lot in check.detail and not report.ok
    await lots.sql("UPDATE tb_lots SET remaining = 100 WHERE id = :i", i=lot)
