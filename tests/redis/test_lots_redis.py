"""Credit lots in the Redis store (lua/lots.lua): grants, the spend order of every debit, holds and reversals giving
back, expiry, and the reads, at the Storage level on a bank with its own clock (docs/lots.md has the rules)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from tests.backends import BoundBackend, Scope, by_name, params
from tokenbank import TokenBank
from tokenbank.errors import TransactionStateError
from tokenbank.ids import new_id
from tokenbank.status import Status
from tokenbank.storage.base import LotRecord, OpKind, OpResult, TxRecord, WriteOp
from tokenbank.storage.capabilities import LotStore
from tokenbank.storage.redis import layout
from tokenbank.storage.redis.backend import RedisStorage
from tokenbank.storage.wire import to_us
from tokenbank.testing import ManualClock

HOUR = timedelta(hours=1)


@pytest.fixture(params=params(by_name("redis", "redis-cluster")))
def redis_backend(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    return request.param.bind(Scope(tmp_path))  # type: ignore[no-any-return]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def bank(redis_backend: BoundBackend, clock: ManualClock) -> AsyncIterator[TokenBank]:
    """1000 units to ``treasury`` (decimals 0, so units and tokens agree), max supply 2000; verify() holds after."""
    settings = redis_backend.settings(initial_supply=1000, max_supply=2000, decimals=0)
    async with TokenBank(settings, clock=clock) as opened:
        yield opened
        report = await opened.verify()
        assert report.ok, f"verify() after the test: {report}"


class Lots:
    """Writes and reads straight on the bank's store, stamped with the bank's clock."""

    def __init__(self, bank: TokenBank, clock: ManualClock) -> None:
        assert isinstance(bank.storage, RedisStorage)
        assert isinstance(bank.storage, LotStore)
        self.bank, self.store, self.clock = bank, bank.storage, clock

    def now(self) -> datetime:
        return self.clock.now()

    def grant_op(
        self,
        to: str,
        amount: int,
        *,
        lot_id: str | None = None,
        funder: str | None = None,
        expires_in: timedelta | None = None,
        available_in: timedelta | None = None,
        category: str | None = None,
        key: str | None = None,
        audit: str | None = None,
    ) -> WriteOp:
        now = self.now()
        return WriteOp(
            kind=OpKind.GRANT, tx_id=lot_id or new_id(), from_user_id=funder, to_user_id=to, amount=amount,
            expires_at=None if expires_in is None else now + expires_in,
            available_at=None if available_in is None else now + available_in,
            category=category, idempotency_key=key, fingerprint=None if key is None else "fp-" + key,
            timestamp=now, audit_action=audit,
        )  # fmt: skip

    async def grant(self, to: str, amount: int, **fields: Any) -> OpResult:
        [result] = await self.store.apply([self.grant_op(to, amount, **fields)], atomic=True)
        return result

    def op(self, kind: OpKind, **fields: Any) -> WriteOp:
        return WriteOp(kind=kind, tx_id=new_id(), timestamp=self.now(), **fields)

    async def one(self, kind: OpKind, **fields: Any) -> OpResult:
        [result] = await self.store.apply([self.op(kind, **fields)], atomic=True)
        return result

    async def transfer(self, frm: str, to: str, amount: int) -> OpResult:
        return await self.one(OpKind.TRANSFER, from_user_id=frm, to_user_id=to, amount=amount)

    async def expire(self, lot_id: str, owner: str, breakage: str = "breakage") -> OpResult:
        return await self.one(OpKind.EXPIRE, lot_id=lot_id, from_user_id=owner, to_user_id=breakage)

    async def remaining(self, user: str) -> list[tuple[str, int]]:
        return [(lot.id, lot.remaining) for lot in await self.store.get_lots(user)]

    async def balance(self, user: str) -> int:
        return (await self.store.get_balances([user]))[user]

    async def spendable(self, user: str) -> int:
        return (await self.store.spendable_balances([user], self.now()))[user]

    async def raw_tx(self, tx_id: str) -> dict[str, Any]:
        raw: dict[str, Any] = json.loads(cast(str, await self.store.client.hget(self.store.keys.tx, tx_id)))
        return raw

    async def raw_hold(self, hold_id: str) -> dict[str, Any]:
        raw: dict[str, Any] = json.loads(cast(str, await self.store.client.hget(self.store.keys.holds, hold_id)))
        return raw

    async def state(self, users: tuple[str, ...] = ("alice", "bob", "carol", "dave")) -> tuple[Any, ...]:
        """Everything lots and balances are kept in (the per-account lot sets of ``users``), to compare before and
        after a refused write."""
        client, keys = self.store.client, self.store.keys
        sets = [
            await client.zrange(key, 0, -1, withscores=True)
            for user in users
            for key in (keys.lot_order(user), keys.lot_avail(user))
        ]
        return (
            await client.hgetall(keys.bal), await client.hgetall(keys.held), await client.hgetall(keys.lots),
            await client.hgetall(keys.lotsdone), await client.zrange(keys.lotexp, 0, -1, withscores=True),
            await client.hget(keys.token, "total_supply"), await client.hlen(keys.tx), await client.get(keys.seq),
            sets,
        )  # fmt: skip


@pytest.fixture
def lots(bank: TokenBank, clock: ManualClock) -> Lots:
    return Lots(bank, clock)


def moves(tx: TxRecord) -> list[tuple[str, int]]:
    return list(tx.lots)


async def test_a_minted_grant_raises_the_supply_and_keeps_its_lot(lots: Lots) -> None:
    result = await lots.grant(
        "alice", 300, lot_id="lot-a", expires_in=HOUR, available_in=timedelta(minutes=5), category="promo",
        audit="grant",
    )  # fmt: skip
    assert result.status is Status.OK
    [tx] = result.transactions
    assert (tx.type, tx.from_user_id, tx.to_user_id, tx.amount, tx.to_balance_after) == (
        "grant",
        None,
        "alice",
        300,
        300,
    )
    assert tx.id == "lot-a" and tx.lots == () and tx.category == "promo"
    assert tx.expires_at == lots.now() + HOUR and tx.available_at == lots.now() + timedelta(minutes=5)
    raw = await lots.raw_tx("lot-a")
    assert "lots" not in raw and raw["category"] == "promo"
    assert raw["expires_at"] == str(to_us(lots.now() + HOUR))
    assert (await lots.store.get_token()).total_supply == 1300  # type: ignore[union-attr]
    [lot] = await lots.store.get_lots("alice")
    assert lot == LotRecord(
        id="lot-a", user_id="alice", amount=300, remaining=300, expires_at=lots.now() + HOUR,
        available_at=lots.now() + timedelta(minutes=5), category="promo", created_at=lots.now(),
    )  # fmt: skip
    assert (await lots.store.audit_log(1, None))[0].action == "grant"
    # beyond the max supply: refused like a mint, nothing changes
    before = await lots.state()
    refused = await lots.grant("bob", 701)
    assert refused.status is Status.SUPPLY_CAP_EXCEEDED
    assert await lots.state() == before
    assert (await lots.grant("bob", 700)).status is Status.OK


async def test_a_funded_grant_debits_the_funder_and_a_refused_one_changes_nothing(lots: Lots) -> None:
    result = await lots.grant("alice", 200, lot_id="lot-a", funder="treasury", expires_in=HOUR)
    [tx] = result.transactions
    assert (tx.type, tx.from_user_id, tx.from_balance_after, tx.to_balance_after) == ("grant", "treasury", 800, 200)
    assert (await lots.store.get_token()).total_supply == 1000  # type: ignore[union-attr]
    # alice funds carol from her own lot: the funder's moves are on the grant
    second = await lots.grant("carol", 50, lot_id="lot-c", funder="alice")
    assert moves(second.transactions[0]) == [("lot-a", 50)]
    assert (await lots.raw_tx("lot-c"))["lots"] == [["lot-a", "50"]]
    assert await lots.remaining("alice") == [("lot-a", 150)]
    assert await lots.remaining("carol") == [("lot-c", 50)]
    # a funder who cannot cover it: refused, nothing changes (no lot, no debit, no transaction)
    before = await lots.state()
    refused = await lots.grant("dave", 151, funder="alice")
    assert refused.status is Status.INSUFFICIENT_BALANCE
    assert await lots.state() == before
    assert await lots.store.get_lots("dave") == []


async def test_every_debit_takes_lots_in_spend_order_and_never_a_pending_or_expired_one(
    lots: Lots, clock: ManualClock
) -> None:
    await lots.grant("alice", 100, lot_id="lot-a", expires_in=3 * HOUR)
    await lots.grant("alice", 100, lot_id="lot-c")  # no expiry: last
    await lots.grant("alice", 50, lot_id="lot-d", expires_in=HOUR)  # same expiry as lot-b: by id, after it
    await lots.grant("alice", 100, lot_id="lot-b", expires_in=HOUR)
    await lots.grant("alice", 100, lot_id="lot-e", expires_in=5 * HOUR, available_in=2 * HOUR)  # pending
    await lots.grant("alice", 40, lot_id="lot-f", expires_in=timedelta(seconds=-1))  # expired, not swept
    await lots.transfer("treasury", "alice", 70)  # plain
    assert await lots.balance("alice") == 560
    assert await lots.spendable("alice") == 420
    assert [lot_id for lot_id, _ in await lots.remaining("alice")] == [
        "lot-f", "lot-b", "lot-d", "lot-a", "lot-e", "lot-c"
    ]  # fmt: skip
    assert (await lots.transfer("alice", "bob", 421)).status is Status.INSUFFICIENT_BALANCE
    result = await lots.transfer("alice", "bob", 260)
    [tx] = result.transactions
    assert moves(tx) == [("lot-b", 100), ("lot-d", 50), ("lot-a", 100), ("lot-c", 10)]
    assert tx.from_balance_after == 300
    assert await lots.remaining("alice") == [("lot-f", 40), ("lot-e", 100), ("lot-c", 90)]
    # what the lots cannot pay comes from the plain balance; a burn follows the same order
    burn = await lots.one(OpKind.BURN, from_user_id="alice", amount=100)
    assert moves(burn.transactions[0]) == [("lot-c", 90)]
    plain = await lots.transfer("alice", "bob", 60)
    assert plain.transactions[0].lots == ()
    assert "lots" not in await lots.raw_tx(plain.transactions[0].id)
    assert await lots.balance("alice") == 140
    assert await lots.spendable("alice") == 0
    assert (await lots.transfer("alice", "bob", 1)).status is Status.INSUFFICIENT_BALANCE
    clock.advance(2 * HOUR)  # lot-e is available now
    assert await lots.spendable("alice") == 100
    assert moves((await lots.transfer("alice", "bob", 30)).transactions[0]) == [("lot-e", 30)]
    assert await lots.store.spendable_balances(["alice", "bob", "nobody"], lots.now()) == {
        "alice": 70, "bob": 350, "nobody": 0,
    }  # fmt: skip


async def test_an_overdraft_goes_below_what_the_lots_lock(lots: Lots, bank: TokenBank) -> None:
    await bank.set_limits("alice", overdraft=50)
    await lots.grant("alice", 100, lot_id="lot-p", available_in=HOUR)
    assert (await lots.transfer("alice", "bob", 51)).status is Status.INSUFFICIENT_BALANCE
    result = await lots.transfer("alice", "bob", 50)
    assert result.transactions[0].lots == () and result.transactions[0].from_balance_after == 50
    assert await lots.spendable("alice") == -50
    # the account still holds a lot: it cannot be closed, whatever its balance
    assert (await lots.transfer("bob", "alice", 50)).status is Status.OK
    await bank.set_limits("alice", overdraft=100)
    assert (await lots.transfer("alice", "bob", 100)).status is Status.OK
    assert await lots.balance("alice") == 0
    with pytest.raises(TransactionStateError):
        await bank.close_account("alice")


async def test_a_failed_atomic_batch_puts_the_lots_back(lots: Lots) -> None:
    await lots.grant("alice", 100, lot_id="lot-a", expires_in=HOUR)
    await lots.grant("alice", 100, lot_id="lot-c")
    before = await lots.state()
    ops = [
        lots.op(OpKind.TRANSFER, from_user_id="alice", to_user_id="bob", amount=150),  # empties lot-a
        lots.grant_op("bob", 30, lot_id="lot-new", expires_in=HOUR),
        lots.op(OpKind.HOLD, from_user_id="bob", to_user_id="carol", amount=20, hold_id=new_id(),
                expires_at=lots.now() + HOUR),
        lots.op(OpKind.TRANSFER, from_user_id="carol", to_user_id="dave", amount=5),  # refused
    ]  # fmt: skip
    results = await lots.store.apply(ops, atomic=True)
    assert [r.status for r in results] == [Status.BATCH_ABORTED] * 3 + [Status.INSUFFICIENT_BALANCE]
    assert await lots.state() == before
    assert await lots.remaining("alice") == [("lot-a", 100), ("lot-c", 100)]
    assert await lots.store.get_lots("bob") == []
    # and when it succeeds, all of it is there
    results = await lots.store.apply(ops[:3], atomic=True)
    assert [r.status for r in results] == [Status.OK] * 3
    assert await lots.remaining("alice") == [("lot-c", 50)]
    assert moves(results[2].transactions[0]) == [("lot-new", 20)]


async def test_a_void_gives_back_to_the_lots_the_hold_took_from_the_last(lots: Lots, bank: TokenBank) -> None:
    await lots.grant("alice", 100, lot_id="lot-a", expires_in=HOUR)
    await lots.grant("alice", 100, lot_id="lot-c")
    await lots.transfer("treasury", "alice", 50)
    hold_id = new_id()
    hold = await lots.one(OpKind.HOLD, from_user_id="alice", to_user_id="shop", amount=180, hold_id=hold_id,
                          expires_at=lots.now() + HOUR)  # fmt: skip
    assert moves(hold.transactions[0]) == [("lot-a", 100), ("lot-c", 80)]
    assert (await lots.raw_hold(hold_id))["lots"] == [["lot-a", "100"], ["lot-c", "80"]]
    assert await lots.remaining("alice") == [("lot-c", 20)]
    void = await lots.one(OpKind.VOID, hold_id=hold_id)
    [tx] = void.transactions
    assert moves(tx) == [("lot-c", -80), ("lot-a", -100)]
    assert (await lots.raw_tx(tx.id))["lots"] == [["lot-c", "-80"], ["lot-a", "-100"]]
    assert await lots.remaining("alice") == [("lot-a", 100), ("lot-c", 100)]
    assert await lots.balance("alice") == 250
    # through the bank: a hold that expires is voided by the sweep, back to a lot expired meanwhile
    await bank.hold("alice", "shop", 250, expires_in=60)
    assert await lots.store.get_lots("alice") == []
    lots.clock.advance(2 * HOUR)
    assert await bank.expire_holds() == 1
    assert await lots.remaining("alice") == [("lot-a", 100), ("lot-c", 100)]
    assert await lots.store.expired_lots(lots.now(), 10) == [("lot-a", "alice")]
    assert await lots.spendable("alice") == 150


async def test_a_partial_capture_releases_the_rest_to_the_last_lots(lots: Lots) -> None:
    await lots.grant("alice", 100, lot_id="lot-a", expires_in=HOUR)
    await lots.grant("alice", 100, lot_id="lot-c")
    hold_id = new_id()
    await lots.one(OpKind.HOLD, from_user_id="alice", to_user_id="shop", amount=180, hold_id=hold_id,
                   expires_at=lots.now() + HOUR)  # fmt: skip
    result = await lots.one(OpKind.CAPTURE, hold_id=hold_id, amount=120)
    capture, release = result.transactions
    assert (capture.type, capture.amount, capture.lots) == ("capture", 120, ())
    assert (release.type, release.amount, moves(release)) == ("void", 60, [("lot-c", -60)])
    assert await lots.remaining("alice") == [("lot-c", 80)]
    assert await lots.store.get_lots("shop") == []
    assert await lots.balance("shop") == 120
    # a full capture moves no lot at all
    second = new_id()
    await lots.one(OpKind.HOLD, from_user_id="alice", to_user_id="shop", amount=80, hold_id=second,
                   expires_at=lots.now() + HOUR)  # fmt: skip
    [whole] = (await lots.one(OpKind.CAPTURE, hold_id=second)).transactions
    assert whole.lots == () and await lots.store.get_lots("alice") == []


async def test_a_reversal_debits_the_receiver_by_lots_and_refills_the_senders(lots: Lots) -> None:
    await lots.grant("alice", 100, lot_id="lot-a", expires_in=HOUR)
    await lots.grant("alice", 100, lot_id="lot-c")
    transfer = await lots.transfer("alice", "bob", 150)
    assert moves(transfer.transactions[0]) == [("lot-a", 100), ("lot-c", 50)]
    await lots.grant("bob", 30, lot_id="lot-g", expires_in=2 * HOUR)
    reversal = await lots.one(OpKind.REVERSE, reverses_id=transfer.transactions[0].id)
    [tx] = reversal.transactions
    assert moves(tx) == [("lot-g", 30), ("lot-a", -100), ("lot-c", -50)]
    assert await lots.remaining("alice") == [("lot-a", 100), ("lot-c", 100)]
    assert await lots.store.get_lots("bob") == []
    assert await lots.balance("bob") == 30
    assert await lots.store.expired_lots(lots.now() + 3 * HOUR, 10) == [("lot-a", "alice")]


async def test_expire_moves_what_is_left_to_breakage_once(lots: Lots, bank: TokenBank) -> None:
    await lots.grant("alice", 100, lot_id="lot-x", expires_in=HOUR)
    await lots.grant("alice", 100, lot_id="lot-y", expires_in=3 * HOUR)
    await lots.transfer("alice", "bob", 30)
    # not expired yet, or not the owner's, or no such lot: nothing to do
    for lot_id, owner in (("lot-x", "alice"), ("lot-x", "bob"), ("nope", "alice")):
        result = await lots.expire(lot_id, owner)
        assert (result.status, result.transactions) == (Status.OK, ())
    lots.clock.advance(2 * HOUR)
    assert await lots.store.expired_lots(lots.now(), 10) == [("lot-x", "alice")]
    assert await lots.spendable("alice") == 100
    await bank.freeze("alice", debits=True, credits=True, reason="no control applies to an expiry")
    [tx] = (await lots.expire("lot-x", "alice")).transactions
    assert (tx.type, tx.from_user_id, tx.to_user_id, tx.amount) == ("expire", "alice", "breakage", 70)
    assert moves(tx) == [("lot-x", 70)] and tx.idempotency_key is None
    assert (tx.from_balance_after, tx.to_balance_after) == (100, 70)
    assert await lots.store.expired_lots(lots.now(), 10) == []
    assert await lots.remaining("alice") == [("lot-y", 100)]
    again = await lots.expire("lot-x", "alice")
    assert (again.status, again.transactions) == (Status.OK, ())
    assert await lots.balance("breakage") == 70


async def test_a_replayed_grant_answers_the_stored_one(lots: Lots) -> None:
    first = await lots.grant("alice", 100, key="k1", expires_in=HOUR)
    again = await lots.grant("alice", 100, key="k1", expires_in=HOUR)
    assert again.status is Status.REPLAYED
    assert again.transactions[0].id == first.transactions[0].id
    assert len(await lots.store.get_lots("alice")) == 1
    assert await lots.balance("alice") == 100


async def test_accounts_without_lots_leave_no_lot_keys(lots: Lots, bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 10)
    hold = await bank.hold("alice", "bob", 5, expires_in=60)
    await bank.void(hold.id)
    client, keys = lots.store.client, lots.store.keys
    assert await client.exists(keys.lots, keys.lotsdone, keys.lotexp) == 0
    last = cast("list[tuple[str, dict[str, str]]]", await client.xrevrange(keys.stream, count=1))
    assert "lots" not in json.loads(last[0][1]["tx"])


async def test_the_stream_carries_the_lot_fields(lots: Lots) -> None:
    await lots.grant("alice", 100, lot_id="lot-a", expires_in=HOUR, available_in=timedelta(0), category="c1")
    await lots.transfer("alice", "bob", 40)
    client, keys = lots.store.client, lots.store.keys
    entries = cast("list[tuple[str, dict[str, str]]]", await client.xrevrange(keys.stream, count=2))
    transfer, grant = (json.loads(entry[1]["tx"]) for entry in entries)
    assert transfer["lots"] == [["lot-a", "40"]]
    assert grant["category"] == "c1" and "expires_at" in grant and "available_at" in grant


async def test_verify_checks_the_lots(redis_backend: BoundBackend, clock: ManualClock) -> None:
    settings = redis_backend.settings(initial_supply=1000, decimals=0)
    async with TokenBank(settings, clock=clock) as bank:
        lots = Lots(bank, clock)
        await lots.grant("alice", 100, lot_id="lot-a")
        await lots.grant("alice", 50, lot_id="lot-b", funder="treasury")
        await lots.transfer("alice", "bob", 120)
        report = {check.name: check for check in (await bank.verify()).checks}
        assert report["lots"].ok and all(check.ok for check in report.values()), report
        client, keys = lots.store.client, lots.store.keys
        await client.zrem(keys.lot_order("alice"), "lot-b")  # a debit would no longer find it
        report = {check.name: check for check in (await bank.verify()).checks}
        assert not report["lots"].ok and "lot-b" in report["lots"].detail and "spend order" in report["lots"].detail
        await client.zadd(keys.lot_order("alice"), {"lot-b": float("inf")})
        assert (await bank.verify()).ok
        bad = ["lot-b", "60", "50", None, None, None, "0", "alice"]
        await client.hset(keys.lots, "lot-b", json.dumps(bad))
        report = {check.name: check for check in (await bank.verify()).checks}
        assert not report["lots"].ok and "lot-b" in report["lots"].detail


async def test_grants_obey_the_accounts_controls_and_a_funded_one_counts_in_the_spend_window(
    lots: Lots, bank: TokenBank
) -> None:
    await bank.freeze("frozen", debits=False, credits=True, reason="no credits")
    assert (await lots.grant("frozen", 10)).status is Status.CREDITS_FROZEN
    await bank.set_limits("capped", max_balance=50)
    await lots.transfer("treasury", "capped", 30)
    assert (await lots.grant("capped", 21)).status is Status.MAX_BALANCE_EXCEEDED
    await bank.freeze("payer", reason="no debits")
    assert (await lots.grant("alice", 10, funder="payer")).status is Status.DEBITS_FROZEN
    await bank.set_limits("treasury", spend_per_window=(100, 3600))
    assert (await lots.grant("alice", 60, funder="treasury")).status is Status.OK
    assert (await lots.grant("alice", 500)).status is Status.OK  # minted: not the treasury's spend
    assert (await lots.grant("alice", 41, funder="treasury")).status is Status.SPEND_LIMIT_EXCEEDED
    assert (await lots.transfer("treasury", "bob", 40)).status is Status.OK
    # an expiry is no spend of its owner's: the window of an owner is left alone
    await bank.set_limits("alice", spend_per_window=(1, 3600))
    await lots.grant("alice", 5, lot_id="lot-short", expires_in=timedelta(seconds=1))
    lots.clock.advance(2)
    assert [tx.amount for tx in (await lots.expire("lot-short", "alice")).transactions] == [5]
    assert (await lots.transfer("alice", "bob", 1)).status is Status.OK


async def test_an_exchange_leg_takes_the_payers_lots(redis_backend: BoundBackend, clock: ManualClock) -> None:
    group = "lots" + new_id()[-8:]
    coins_settings = redis_backend.settings(symbol="c" + new_id()[-8:], initial_supply=1000, decimals=0,
                                            ledger_group=group)  # fmt: skip
    gems_settings = redis_backend.settings(symbol="g" + new_id()[-8:], initial_supply=1000, decimals=0,
                                           ledger_group=group)  # fmt: skip
    async with TokenBank(coins_settings, clock=clock) as coins, TokenBank(gems_settings, clock=clock) as gems:
        coin_lots, gem_lots = Lots(coins, clock), Lots(gems, clock)
        await coin_lots.grant("alice", 100, lot_id="lot-a", expires_in=HOUR)
        await gem_lots.transfer("treasury", "bob", 10)
        pay = coin_lots.op(OpKind.TRANSFER, from_user_id="alice", to_user_id="bob", amount=60)
        get = gem_lots.op(OpKind.TRANSFER, from_user_id="bob", to_user_id="alice", amount=10)
        mine, theirs = await coin_lots.store.apply_exchange(gem_lots.store, pay, get)
        assert (mine.status, theirs.status) == (Status.OK, Status.OK)
        assert moves(mine.transactions[0]) == [("lot-a", 60)] and theirs.transactions[0].lots == ()
        assert await coin_lots.remaining("alice") == [("lot-a", 40)]
        # a refused exchange leaves the lots as they were
        pay = coin_lots.op(OpKind.TRANSFER, from_user_id="alice", to_user_id="bob", amount=40)
        get = gem_lots.op(OpKind.TRANSFER, from_user_id="bob", to_user_id="alice", amount=1)
        mine, theirs = await coin_lots.store.apply_exchange(gem_lots.store, pay, get)
        assert (mine.status, theirs.status) == (Status.BATCH_ABORTED, Status.INSUFFICIENT_BALANCE)
        assert await coin_lots.remaining("alice") == [("lot-a", 40)]
        for bank in (coins, gems):
            assert (await bank.verify()).ok


async def test_spendable_balances_reload_their_script_when_the_server_lost_it(lots: Lots) -> None:
    await lots.grant("alice", 100, lot_id="lot-p", available_in=HOUR)
    await lots.transfer("treasury", "alice", 30)
    lots.store.scripts.spendable.sha = "0" * 40  # as after a restart of the server: EVALSHA answers NOSCRIPT
    assert await lots.spendable("alice") == 30
    assert await lots.spendable("alice") == 30


async def test_a_rebuild_writes_lots_as_the_scripts_keep_them(lots: Lots) -> None:
    """layout.put_lots (the hybrid rebuild's writer): spend order, the expiry index, used-up lots refillable."""
    now = lots.now()
    await lots.transfer("treasury", "alice", 150)  # the balance the lots are part of
    records = [
        LotRecord("lot-z", "alice", 50, 50, None, None, "x", now),
        LotRecord("lot-y", "alice", 50, 50, now + HOUR, None, None, now),
        LotRecord("lot-w", "alice", 50, 0, now + HOUR, None, None, now),
        LotRecord("lot-v", "alice", 50, 50, now + 2 * HOUR, now + HOUR, None, now),
    ]
    async with lots.store.client.pipeline(transaction=True) as pipe:
        layout.put_lots(pipe, lots.store.keys, records)
        await pipe.execute()
    assert await lots.store.get_lots("alice") == [records[1], records[3], records[0]]
    assert await lots.store.expired_lots(now + 3 * HOUR, 10) == [("lot-y", "alice"), ("lot-v", "alice")]
    assert await lots.spendable("alice") == 100
    [tx] = (await lots.transfer("alice", "bob", 60)).transactions
    assert moves(tx) == [("lot-y", 50), ("lot-z", 10)]
    # a used-up lot written by the rebuild is found by a give-back
    tx_json = await lots.raw_tx(tx.id)
    tx_json["lots"] = [["lot-w", "20"]]
    await lots.store.client.hset(lots.store.keys.tx, tx.id, json.dumps(tx_json))
    [back] = (await lots.one(OpKind.REVERSE, reverses_id=tx.id)).transactions
    assert moves(back) == [("lot-w", -20)]
    assert [lot_id for lot_id, _ in await lots.remaining("alice")] == ["lot-w", "lot-v", "lot-z"]


async def test_concurrent_debits_batched_into_one_call_share_the_lots_exactly(lots: Lots, bank: TokenBank) -> None:
    for n in range(5):
        await lots.grant("alice", 20, lot_id=f"lot-{n}", expires_in=(n + 1) * HOUR)
    await lots.grant("alice", 50, lot_id="lot-pending", available_in=HOUR)

    async def pay(n: int) -> Status:
        return (await lots.transfer("alice", f"shop{n % 3}", 3)).status

    statuses = await asyncio.gather(*(pay(n) for n in range(40)))
    assert statuses.count(Status.OK) == 33 and statuses.count(Status.INSUFFICIENT_BALANCE) == 7
    assert await lots.remaining("alice") == [("lot-4", 1), ("lot-pending", 50)]
    assert await lots.balance("alice") == 51


async def test_a_debit_over_many_lots_takes_them_in_spend_order_past_the_pending_ones(lots: Lots) -> None:
    """lots.lua reads the spend order a few lots at a time (8, then 16, 32...): a debit taking more than that,
    with pending lots in between and lots used up on the way, takes exactly the first spendable ones."""
    order = []
    for n in range(60):
        pending = n % 3 == 1
        await lots.grant("alice", 2, lot_id=f"lot-{n:02d}", expires_in=(n // 2 + 1) * HOUR,  # pairs share an expiry
                         available_in=HOUR / 2 if pending else None)  # fmt: skip
        if not pending:
            order.append(f"lot-{n:02d}")
    await lots.transfer("treasury", "alice", 5)  # plain
    assert await lots.spendable("alice") == 2 * len(order) + 5
    before = await lots.state()
    ops = [
        lots.op(OpKind.TRANSFER, from_user_id="alice", to_user_id="bob", amount=2 * 30 + 1),
        lots.op(OpKind.TRANSFER, from_user_id="carol", to_user_id="dave", amount=1),  # refused: all goes back
    ]
    assert [r.status for r in await lots.store.apply(ops, atomic=True)] == [
        Status.BATCH_ABORTED, Status.INSUFFICIENT_BALANCE,
    ]  # fmt: skip
    assert await lots.state() == before
    [tx] = (await lots.transfer("alice", "bob", 2 * 30 + 1)).transactions
    assert moves(tx) == [(lot_id, 2) for lot_id in order[:30]] + [(order[30], 1)]
    left = [lot_id for lot_id, _ in await lots.remaining("alice")]
    assert left == sorted([order[30], *(f"lot-{n:02d}" for n in range(60) if n % 3 == 1), *order[31:]])
    [rest] = (await lots.transfer("alice", "bob", 2 * (len(order) - 31) + 1 + 5)).transactions
    assert moves(rest)[0] == (order[30], 1) and len(moves(rest)) == len(order) - 30
    assert await lots.spendable("alice") == 0
