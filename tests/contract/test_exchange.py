"""``tokenbank.exchange`` on every backend: two tokens of one store change hands in ONE store call, all or nothing,
under every account rule of both tokens, idempotent, exact under concurrency, with linked history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from tests.backends import BoundBackend, params, unique
from tests.conftest import module_backend
from tests.support import assert_error, history, open_bank, snapshot
from tokenbank import (
    AccountClosedError,
    AccountFrozenError,
    ConfigurationError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidAccountError,
    InvalidAmountError,
    InvalidRequestError,
    LimitExceededError,
    PriceUnavailableError,
    TokenBank,
    TokenBankError,
    TransactionType,
    exchange,
)
from tokenbank.status import Status
from tokenbank.storage.capabilities import ExchangeStore

GROUP = "game"
ACCOUNTS = ("treasury", "alice", "bob", "shop")


@dataclass
class Pair:
    """Coins (2 decimals) and gems (no decimals) on one store: the game of docs/exchange.md."""

    coins: TokenBank
    gems: TokenBank

    async def state(self) -> tuple[Any, Any]:
        return await snapshot(self.coins, ACCOUNTS), await snapshot(self.gems, ACCOUNTS)


async def _pair(backend: BoundBackend, **overrides: Any) -> AsyncIterator[Pair]:
    async with (
        open_bank(backend, symbol=unique("c"), initial_supply=1000, ledger_group=GROUP, **overrides) as coins,
        open_bank(backend, symbol=unique("g"), initial_supply=500, decimals=0, ledger_group=GROUP, **overrides) as gems,
    ):
        await coins.transfer("treasury", "alice", 100)
        await gems.transfer("treasury", "shop", 200)
        yield Pair(coins, gems)
        assert await coins.get_total_supply() == 1000
        assert await gems.get_total_supply() == 500


@pytest.fixture
async def pair(durable_backend: BoundBackend) -> AsyncIterator[Pair]:
    async for opened in _pair(durable_backend):
        yield opened


async def test_the_user_pays_one_token_and_receives_the_other_in_one_store_call(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    coins, gems = pair.coins, pair.gems
    store = coins.storage
    assert isinstance(store, ExchangeStore)
    calls: list[int] = []
    apply_exchange = store.apply_exchange

    async def counted(*args: Any) -> Any:
        calls.append(len(args))
        return await apply_exchange(*args)

    monkeypatch.setattr(store, "apply_exchange", counted)
    ex = await exchange(
        (coins, "alice", "25.50"), (gems, "shop", 10), metadata={"offer": "starter-pack"}, reason="gem shop"
    )
    assert calls == [3]
    assert (ex.pay_symbol, ex.receive_symbol, ex.replayed) == (coins.settings.symbol, gems.settings.symbol, False)
    assert (ex.pay.type, ex.pay.from_user_id, ex.pay.to_user_id, ex.pay.amount) == (
        TransactionType.TRANSFER, "alice", "shop", Decimal("25.50"),
    )  # fmt: skip
    assert (ex.receive.type, ex.receive.from_user_id, ex.receive.to_user_id, ex.receive.amount) == (
        TransactionType.TRANSFER, "shop", "alice", Decimal(10),
    )  # fmt: skip
    assert ex.pay.reason == ex.receive.reason == "gem shop"
    assert ex.pay.metadata == {
        "offer": "starter-pack", "exchange_id": ex.id, "exchange_leg": "pay",
        "exchange_symbol": gems.settings.symbol, "exchange_tx_id": ex.receive.id,
    }  # fmt: skip
    assert ex.receive.metadata == {
        "offer": "starter-pack", "exchange_id": ex.id, "exchange_leg": "receive",
        "exchange_symbol": coins.settings.symbol, "exchange_tx_id": ex.pay.id,
    }  # fmt: skip
    assert ex.pay.exchange_id == ex.receive.exchange_id == ex.id
    assert await coins.get_balances(["alice", "shop"]) == {"alice": Decimal("74.50"), "shop": Decimal("25.50")}
    assert await gems.get_balances(["alice", "shop"]) == {"alice": 10, "shop": 190}
    # Each leg is in its own token's history, found by id there and nowhere else.
    assert [tx.id for tx in await history(coins, "alice")][:1] == [ex.pay.id]
    assert [tx.id for tx in await history(gems, "alice")] == [ex.receive.id]
    assert await coins.transactions.get_transaction_by_id(ex.pay.id) == ex.pay
    assert await gems.transactions.get_transaction_by_id(ex.receive.id) == ex.receive
    assert {h.user_id for h in await gems.get_top_holders()} >= {"alice", "shop"}


async def test_exchanges_go_both_ways_and_supplies_never_move(pair: Pair) -> None:
    coins, gems = pair.coins, pair.gems
    await exchange((coins, "alice", 30), (gems, "shop", 12))
    back = await exchange((gems, "alice", 5), (coins, "shop", "12.50"))
    assert (back.pay_symbol, back.receive_symbol) == (gems.settings.symbol, coins.settings.symbol)
    assert await coins.get_balances(["alice", "shop"]) == {"alice": Decimal("82.50"), "shop": Decimal("17.50")}
    assert await gems.get_balances(["alice", "shop"]) == {"alice": 7, "shop": 193}
    assert await coins.get_total_supply() == 1000
    assert await gems.get_total_supply() == 500


def _refusals() -> list[Any]:
    async def no_setup(_: Pair) -> None:
        return None

    def case(label: str, setup: Callable[[Pair], Awaitable[object]], pay: tuple[str, int | str],
             receive: tuple[str, Any], error: type[TokenBankError]) -> Any:  # fmt: skip
        return pytest.param(setup, pay, receive, error, id=label)

    return [
        case("user-cannot-pay", no_setup, ("alice", "100.01"), ("shop", 1), InsufficientBalanceError),
        case("counterparty-cannot-deliver", no_setup, ("alice", 1), ("shop", 201), InsufficientBalanceError),
        case("user-never-funded", no_setup, ("bob", 1), ("shop", 1), InsufficientBalanceError),
        case("user-debits-frozen", lambda p: p.coins.freeze("alice", reason="review"), ("alice", 1), ("shop", 1),
             AccountFrozenError),
        case("counterparty-debits-frozen", lambda p: p.gems.freeze("shop", reason="audit"), ("alice", 1), ("shop", 1),
             AccountFrozenError),
        case("user-credits-frozen-in-the-received-token",
             lambda p: p.gems.freeze("alice", debits=False, credits=True, reason="kyc"), ("alice", 1), ("shop", 1),
             AccountFrozenError),
        case("counterparty-closed-in-the-paid-token", lambda p: p.coins.close_account("shop"), ("alice", 1),
             ("shop", 1), AccountClosedError),
        case("received-token-max-balance", lambda p: p.gems.set_limits("alice", max_balance=3), ("alice", 1),
             ("shop", 4), LimitExceededError),
        case("paid-token-spend-window", lambda p: p.coins.set_limits("alice", spend_per_window=(5, 3600)),
             ("alice", "5.01"), ("shop", 1), LimitExceededError),
    ]  # fmt: skip


@pytest.mark.parametrize(("setup", "pay", "receive", "error"), _refusals())
async def test_a_refused_leg_refuses_the_exchange_and_changes_nothing_on_either_token(
    pair: Pair,
    setup: Callable[[Pair], Awaitable[object]],
    pay: tuple[str, int | str],
    receive: tuple[str, Any],
    error: type[TokenBankError],
) -> None:
    await setup(pair)
    before = await pair.state()
    with pytest.raises(TokenBankError) as caught:
        await exchange((pair.coins, *pay), (pair.gems, *receive), idempotency_key="refused")
    assert_error(caught.value, error)
    assert await pair.state() == before
    # Nothing of the refused exchange was kept, not even its idempotency key: the same call can succeed later.
    for bank in (pair.coins, pair.gems):
        for account in ACCOUNTS:
            assert all(tx.idempotency_key != "refused" for tx in await history(bank, account))


async def test_the_refusal_names_the_leg_and_the_account(pair: Pair) -> None:
    with pytest.raises(InsufficientBalanceError) as caught:
        await exchange((pair.coins, "alice", 1), (pair.gems, "shop", 201))
    assert (caught.value.param, caught.value.user_id, caught.value.requested) == ("receive.amount", "shop", 201)
    assert caught.value.available == 200


async def test_when_both_legs_are_refused_the_token_first_by_symbol_reports(pair: Pair) -> None:
    """Every store applies the legs in symbol order (coins "c...", then gems "g..."), whichever is paid."""
    coins, gems = pair.coins, pair.gems
    for pay, receive, param in (
        ((coins, "alice", 101), (gems, "shop", 201), "pay.amount"),
        ((gems, "alice", 1), (coins, "shop", 1), "receive.amount"),
    ):
        with pytest.raises(InsufficientBalanceError) as caught:
            await exchange(pay, receive)
        assert (caught.value.param, caught.value.requested) == (param, 101 if param == "pay.amount" else 1)


async def test_the_same_key_replays_the_exchange_and_applies_it_once(pair: Pair) -> None:
    coins, gems = pair.coins, pair.gems
    first = await exchange((coins, "alice", 10), (gems, "shop", 4), idempotency_key="buy-1", metadata={"n": 1})
    again = await exchange((coins, "alice", 10), (gems, "shop", 4), idempotency_key="buy-1", metadata={"n": 1})
    assert again.replayed and again.pay.replayed and again.receive.replayed
    assert (again.id, again.pay, again.receive) == (first.id, first.pay, first.receive)
    assert first.pay.idempotency_key == first.receive.idempotency_key == "buy-1"
    assert await coins.get_balance("alice") == 90
    assert await gems.get_balance("alice") == 4
    before = await pair.state()
    for pay, receive, metadata in (
        ((coins, "alice", 11), (gems, "shop", 4), {"n": 1}),  # another amount
        ((coins, "alice", 10), (gems, "shop", 4), {"n": 2}),  # other metadata
        ((coins, "alice", 10), (gems, "bob", 4), {"n": 1}),  # another counterparty
        ((gems, "alice", 4), (coins, "shop", 10), {"n": 1}),  # the other direction
    ):
        with pytest.raises(IdempotencyConflictError):
            await exchange(pay, receive, idempotency_key="buy-1", metadata=metadata)
    assert await pair.state() == before
    # A key a plain transfer of one token used already is another request too.
    await coins.transfer("alice", "bob", 1, idempotency_key="plain")
    before = await pair.state()
    with pytest.raises(IdempotencyConflictError):
        await exchange((coins, "alice", 1), (gems, "shop", 1), idempotency_key="plain")
    assert await pair.state() == before


async def test_only_the_exchanges_the_user_can_cover_apply_under_concurrency(pair: Pair) -> None:
    """200 concurrent exchanges of 0.50 coins out of 10.00: exactly 20 apply, on both tokens."""
    coins, gems = pair.coins, pair.gems
    await coins.transfer("alice", "treasury", 90)
    outcomes = await asyncio.gather(
        *(exchange((coins, "alice", "0.50"), (gems, "shop", 1)) for _ in range(200)), return_exceptions=True
    )
    applied = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(applied) == 20
    assert all(isinstance(e, InsufficientBalanceError) for e in refused), {repr(e) for e in refused}
    assert await coins.get_balances(["alice", "shop"]) == {"alice": 0, "shop": 10}
    assert await gems.get_balances(["alice", "shop"]) == {"alice": 20, "shop": 180}
    assert len({ex.pay.id for ex in applied}) == len({ex.receive.id for ex in applied}) == 20
    assert len([tx for tx in await history(gems, "alice") if tx.exchange_id]) == 20


async def test_a_spend_window_counts_only_the_exchanges_that_applied(pair: Pair) -> None:
    """Alice may spend 10.00 coins per hour. 200 concurrent exchanges of 0.50 coins each, half of them with bob,
    who has no gems (the receive leg is refused after the paying leg ran in the same call): exactly 20 with the
    shop apply, so no refused exchange left a spend counted in the window."""
    coins, gems = pair.coins, pair.gems
    await coins.set_limits("alice", spend_per_window=(10, 3600))
    calls = [exchange((coins, "alice", "0.50"), (gems, "shop" if n % 2 else "bob", 1)) for n in range(200)]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    with_shop, with_bob = outcomes[1::2], outcomes[0::2]
    # Bob's are refused by his missing gems, or by the window first once it is full.
    assert all(isinstance(o, InsufficientBalanceError | LimitExceededError) for o in with_bob), set(map(repr, with_bob))
    applied = [o for o in with_shop if not isinstance(o, BaseException)]
    refused = [o for o in with_shop if isinstance(o, BaseException)]
    assert len(applied) == 20
    assert all(isinstance(e, LimitExceededError) for e in refused), {repr(e) for e in refused}
    assert (await coins.get_account("alice")).spent_in_window == Decimal(10)
    assert await coins.get_balances(["alice", "shop", "bob"]) == {"alice": 90, "shop": 10, "bob": 0}
    assert await gems.get_balances(["alice", "shop", "bob"]) == {"alice": 20, "shop": 180, "bob": 0}
    assert (await coins.verify()).ok and (await gems.verify()).ok


async def test_exchanges_in_both_directions_at_once_neither_deadlock_nor_lose_a_unit(pair: Pair) -> None:
    coins, gems = pair.coins, pair.gems
    await gems.transfer("shop", "bob", 50)
    buys = [exchange((coins, "alice", 2), (gems, "shop", 1)) for _ in range(40)]
    sells = [exchange((gems, "bob", 1), (coins, "shop", 1)) for _ in range(40)]
    interleaved = [call for both in zip(buys, sells, strict=True) for call in both]
    outcomes = await asyncio.gather(*interleaved, return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    # The shop starts without coins, so a sale only applies once the shop has earned enough from purchases.
    assert all(isinstance(e, InsufficientBalanceError) for e in errors), errors[:3]
    sold = sum(1 for o in outcomes[1::2] if not isinstance(o, BaseException))
    assert sum(1 for o in outcomes[0::2] if not isinstance(o, BaseException)) == 40
    assert await coins.get_balances(["alice", "bob", "shop"]) == {"alice": 20, "bob": sold, "shop": 80 - sold}
    assert await gems.get_balances(["alice", "bob", "shop"]) == {"alice": 40, "bob": 50 - sold, "shop": 110 + sold}


async def test_a_rate_prices_the_received_token_rounded_down(pair: Pair) -> None:
    coins, gems = pair.coins, pair.gems
    ex = await exchange((coins, "alice", "12.99"), (gems, "shop", None), rate=Decimal("0.4"))
    assert ex.receive.amount == 5  # 12.99 x 0.4 = 5.196 gems: 5, the rest stays with the shop

    async def feed() -> Decimal:
        return Decimal(2)

    ex = await exchange((gems, "alice", 5), (coins, "shop", None), rate=feed)
    assert ex.receive.amount == Decimal("10.00")
    assert await gems.get_balance("alice") == 0
    before = await pair.state()
    with pytest.raises(InvalidAmountError) as small:
        await exchange((coins, "alice", "0.01"), (gems, "shop", None), rate="0.5")
    assert small.value.param == "rate"
    with pytest.raises(InvalidRequestError):
        await exchange((coins, "alice", 1), (gems, "shop", 1), rate="0.5")
    with pytest.raises(InvalidRequestError):
        await exchange((coins, "alice", 1), (gems, "shop", None))

    async def broken() -> Decimal:
        raise RuntimeError("feed down")

    async def floating() -> Any:
        return 0.5

    for provider in (broken, floating):
        with pytest.raises(PriceUnavailableError):
            await exchange((coins, "alice", 1), (gems, "shop", None), rate=provider)
    for bad in (0.5, "-1", 0, "NaN", "abc"):
        with pytest.raises(InvalidAmountError):
            await exchange((coins, "alice", 1), (gems, "shop", None), rate=bad)  # type: ignore[arg-type]
    assert await pair.state() == before


def _bad_input() -> list[Any]:
    def row(label: str, call: Callable[[Pair], Awaitable[object]], error: type[TokenBankError], param: str) -> Any:
        return pytest.param(call, error, param, id=label)

    return [
        row("same-bank-twice", lambda p: exchange((p.coins, "alice", 1), (p.coins, "shop", 1)),
            InvalidRequestError, "receive"),
        row("zero-paid", lambda p: exchange((p.coins, "alice", 0), (p.gems, "shop", 1)), InvalidAmountError,
            "pay.amount"),
        row("negative-received", lambda p: exchange((p.coins, "alice", 1), (p.gems, "shop", -1)),
            InvalidAmountError, "receive.amount"),
        row("float-paid", lambda p: exchange((p.coins, "alice", 0.5), (p.gems, "shop", 1)), InvalidAmountError,  # type: ignore[arg-type]
            "pay.amount"),
        row("too-many-decimals", lambda p: exchange((p.coins, "alice", 1), (p.gems, "shop", "1.5")),
            InvalidAmountError, "receive.amount"),
        row("no-paid-amount", lambda p: exchange((p.coins, "alice", None), (p.gems, "shop", 1)),
            InvalidAmountError, "pay.amount"),
        row("user-is-counterparty", lambda p: exchange((p.coins, "alice", 1), (p.gems, "alice", 1)),
            InvalidAccountError, "receive.user_id"),
        row("empty-user", lambda p: exchange((p.coins, "", 1), (p.gems, "shop", 1)), InvalidAccountError,
            "pay.user_id"),
        row("control-char-counterparty", lambda p: exchange((p.coins, "alice", 1), (p.gems, "sh\nop", 1)),
            InvalidAccountError, "receive.user_id"),
        row("not-a-bank", lambda p: exchange(("coins", "alice", 1), (p.gems, "shop", 1)),  # type: ignore[arg-type]
            InvalidRequestError, "pay"),
        row("not-a-triple", lambda p: exchange((p.coins, "alice"), (p.gems, "shop", 1)),  # type: ignore[arg-type]
            InvalidRequestError, "pay"),
        row("reserved-metadata", lambda p: exchange((p.coins, "alice", 1), (p.gems, "shop", 1),
                                                    metadata={"exchange_id": "x"}), InvalidRequestError, "metadata"),
        row("long-key", lambda p: exchange((p.coins, "alice", 1), (p.gems, "shop", 1), idempotency_key="k" * 500),
            InvalidRequestError, "idempotency_key"),
    ]  # fmt: skip


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=params(lambda b: b.persistent))
async def refusing_pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pair]:
    """One pair per backend for the whole table below: each bad call must change nothing, which the test checks."""
    with module_backend(request, tmp_path_factory) as backend:
        async for opened in _pair(backend):
            yield opened


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("call", "error", "param"), _bad_input())
async def test_bad_input_is_refused_before_any_write(
    refusing_pair: Pair, call: Callable[[Pair], Awaitable[object]], error: type[TokenBankError], param: str | None
) -> None:
    before = await refusing_pair.state()
    with pytest.raises(TokenBankError) as caught:
        await call(refusing_pair)
    assert_error(caught.value, error)
    assert caught.value.param == param
    assert await refusing_pair.state() == before


async def test_banks_that_cannot_share_one_store_call_are_refused(durable_backend: BoundBackend, tmp_path: Any) -> None:
    async for p in _pair(durable_backend):
        before = await p.state()
        same_token = TokenBank(durable_backend.settings(symbol=p.coins.settings.symbol, ledger_group=GROUP))
        async with same_token:
            with pytest.raises(InvalidRequestError):
                await exchange((p.coins, "alice", 1), (same_token, "shop", 1))
        unknown = TokenBank(durable_backend.settings(symbol=unique("u"), ledger_group=GROUP, auto_create=False))
        with pytest.raises(InvalidRequestError):  # never opened
            await exchange((p.coins, "alice", 1), (unknown, "shop", 1))
        closed = TokenBank(durable_backend.settings(symbol=unique("x"), ledger_group=GROUP))
        async with closed:
            pass
        with pytest.raises(InvalidRequestError):
            await exchange((closed, "alice", 1), (p.gems, "shop", 1))
        elsewhere = f"sqlite+aiosqlite:///{tmp_path}/elsewhere.db"
        async with open_bank(durable_backend, symbol=unique("e"), storage_mode="sql", database_url=elsewhere,
                             database_schema=None) as other:  # fmt: skip
            with pytest.raises(ConfigurationError):
                await exchange((p.coins, "alice", 1), (other, "shop", 1))
            with pytest.raises(ConfigurationError):
                await exchange((other, "alice", 1), (p.gems, "shop", 1))
        if not durable_backend.sql:
            for group in (None, "other"):
                async with open_bank(durable_backend, symbol=unique("o"), ledger_group=group) as outside:
                    with pytest.raises(ConfigurationError, match="TOKEN_LEDGER_GROUP"):
                        await exchange((p.coins, "alice", 1), (outside, "shop", 1))
        assert await p.state() == before


async def test_the_store_refuses_both_legs_when_a_token_does_not_exist(durable_backend: BoundBackend) -> None:
    """The store's own check (the facade reads both tokens first, but one may be dropped in between)."""
    async for p in _pair(durable_backend):
        missing = TokenBank(durable_backend.settings(symbol=unique("m"), ledger_group=GROUP))
        store = p.coins.storage
        assert isinstance(store, ExchangeStore)
        await missing.storage.open()
        try:
            before = await p.state()
            pay = p.coins.ledger.ops.transfer("alice", "shop", 1, None, None, None)
            receive = missing.ledger.ops.transfer("shop", "alice", 1, None, None, None)
            for first, second, ops in ((store, missing.storage, (pay, receive)),):
                results = await first.apply_exchange(second, *ops)
                assert [r.status for r in results] == [Status.BATCH_ABORTED, Status.TOKEN_NOT_INITIALIZED]
            assert await p.state() == before
        finally:
            await missing.close()


@pytest.mark.parametrize("backend", params(lambda b: not b.persistent), indirect=True)
async def test_in_memory_sqlite_databases_cannot_exchange(backend: BoundBackend) -> None:
    async for p in _pair(backend):
        before = await p.state()
        with pytest.raises(ConfigurationError, match="in-memory"):
            await exchange((p.coins, "alice", 1), (p.gems, "shop", 1))
        assert await p.state() == before


async def test_either_leg_may_use_an_overdraft_down_to_its_floor(pair: Pair) -> None:
    coins, gems = pair.coins, pair.gems
    await coins.set_limits("alice", overdraft=20)  # the paying leg
    await gems.set_limits("shop", overdraft=3)  # the receiving leg's sender
    await exchange((coins, "alice", 120), (gems, "shop", 203))
    assert await coins.get_balance("alice") == -20 and await gems.get_balance("shop") == -3
    before = await pair.state()
    for pay, receive in ((("alice", "0.01"), ("shop", 1)), (("bob", 1), ("shop", 1))):
        with pytest.raises(InsufficientBalanceError):
            await exchange((coins, *pay), (gems, *receive))
    assert await pair.state() == before
    for bank in (coins, gems):
        assert (await bank.verify()).ok
