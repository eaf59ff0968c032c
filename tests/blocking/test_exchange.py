"""``tokenbank.blocking.exchange``: the async exchange for two blocking banks that share one event loop, with
the same result, replays and refusals, from any thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.backends import BoundBackend, Scope, by_name, params, unique
from tests.support import Snapshot, assert_error, snapshot
from tokenbank import (
    AccountFrozenError,
    ConfigurationError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidAccountError,
    InvalidAmountError,
    InvalidRequestError,
    PriceUnavailableError,
    Settings,
    TokenBankError,
)
from tokenbank.blocking import TokenBank, exchange

GROUP = "shop"
ACCOUNTS = ("treasury", "alice", "bob", "shop")


@dataclass
class Pair:
    """Coins (2 decimals) and gems (whole units) on one store and one event loop."""

    coins: TokenBank
    gems: TokenBank

    def state(self) -> tuple[Snapshot, Snapshot]:
        return _snapshot(self.coins), _snapshot(self.gems)


def _snapshot(bank: TokenBank) -> Snapshot:
    """The async helper, awaited on the bank's loop."""
    return bank.run(snapshot, bank.async_bank, ACCOUNTS)


@pytest.fixture(params=params(by_name("sqlite", "postgres", "redis")))
def exchange_backend(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    return request.param.bind(Scope(tmp_path))  # type: ignore[no-any-return]


def _settings(backend: BoundBackend, prefix: str, **overrides: Any) -> Any:
    return backend.settings(symbol=unique(prefix), ledger_group=GROUP, **overrides)


@pytest.fixture
def pair(exchange_backend: BoundBackend) -> Iterator[Pair]:
    with (
        TokenBank(_settings(exchange_backend, "c", initial_supply=1000)) as coins,
        TokenBank(_settings(exchange_backend, "g", initial_supply=500, decimals=0), share_loop_with=coins) as gems,
    ):
        coins.transfer("treasury", "alice", 100)
        gems.transfer("treasury", "shop", 200)
        yield Pair(coins, gems)
        assert coins.get_total_supply() == 1000
        assert gems.get_total_supply() == 500
        assert coins.verify().ok and gems.verify().ok


def test_an_exchange_and_its_replay(pair: Pair) -> None:
    coins, gems = pair.coins, pair.gems
    request: dict[str, Any] = {"idempotency_key": "order-1", "metadata": {"offer": "starter"}, "reason": "gem shop"}
    ex = exchange((coins, "alice", "25.50"), (gems, "shop", 10), **request)
    assert (ex.pay_symbol, ex.receive_symbol, ex.replayed) == (coins.settings.symbol, gems.settings.symbol, False)
    assert (ex.pay.from_user_id, ex.pay.to_user_id, ex.pay.amount) == ("alice", "shop", Decimal("25.50"))
    assert (ex.receive.from_user_id, ex.receive.to_user_id, ex.receive.amount) == ("shop", "alice", Decimal(10))
    assert ex.pay.metadata is not None and ex.pay.metadata["exchange_tx_id"] == ex.receive.id
    assert ex.pay.exchange_id == ex.receive.exchange_id == ex.id
    assert coins.transactions.get_transaction_by_id(ex.pay.id) == ex.pay
    assert gems.transactions.get_transaction_by_id(ex.receive.id) == ex.receive
    after = pair.state()

    again = exchange((coins, "alice", "25.50"), (gems, "shop", 10), **request)
    assert again.replayed
    assert (again.id, again.pay.id, again.receive.id) == (ex.id, ex.pay.id, ex.receive.id)
    assert pair.state() == after
    with pytest.raises(IdempotencyConflictError):
        exchange((coins, "alice", "25.51"), (gems, "shop", 10), **request)
    assert pair.state() == after
    assert coins.get_balances(["alice", "shop"]) == {"alice": Decimal("74.50"), "shop": Decimal("25.50")}
    assert gems.get_balances(["alice", "shop"]) == {"alice": 10, "shop": 190}


def test_rates_fixed_and_from_an_async_provider(pair: Pair) -> None:
    coins, gems = pair.coins, pair.gems
    assert exchange((coins, "alice", "12.99"), (gems, "shop", None), rate=Decimal("0.4")).receive.amount == 5

    async def quote() -> Decimal:  # awaited on the banks' loop
        return Decimal(2)

    assert exchange((coins, "alice", "3"), (gems, "shop", None), rate=quote).receive.amount == 6

    async def down() -> Decimal:
        raise OSError("price feed down")

    before = pair.state()
    with pytest.raises(PriceUnavailableError):
        exchange((coins, "alice", "3"), (gems, "shop", None), rate=down)
    assert pair.state() == before


def test_a_refused_leg_changes_nothing(pair: Pair) -> None:
    coins, gems = pair.coins, pair.gems
    before = pair.state()
    with pytest.raises(InsufficientBalanceError) as paid:
        exchange((coins, "alice", "100.01"), (gems, "shop", 1), idempotency_key="too-much")
    assert (paid.value.param, paid.value.user_id) == ("pay.amount", "alice")
    with pytest.raises(InsufficientBalanceError) as delivered:
        exchange((coins, "alice", 1), (gems, "shop", 201))
    assert delivered.value.param == "receive.amount"
    assert pair.state() == before

    gems.freeze("shop", reason="audit")
    before = pair.state()
    with pytest.raises(AccountFrozenError):
        exchange((coins, "alice", 1), (gems, "shop", 1), idempotency_key="frozen")
    assert pair.state() == before
    gems.unfreeze("shop")
    # The refused requests left no idempotency key behind: the same keys now apply.
    assert not exchange((coins, "alice", 1), (gems, "shop", 1), idempotency_key="frozen").replayed
    assert not exchange((coins, "alice", "99"), (gems, "shop", 1), idempotency_key="too-much").replayed
    assert coins.get_balance("alice") == 0


def test_exchanges_from_many_threads_are_exact(pair: Pair) -> None:
    # 24 exchanges of 10 coins from 4 threads; alice's 100 coins cover exactly 10 of them.
    coins, gems = pair.coins, pair.gems
    outcomes: list[str] = []
    lock = threading.Lock()

    def buy(thread: int) -> None:
        for n in range(6):
            try:
                exchange((coins, "alice", 10), (gems, "shop", 1), idempotency_key=f"t{thread}-{n}")
                outcome = "ok"
            except InsufficientBalanceError:
                outcome = "refused"
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=buy, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (outcomes.count("ok"), outcomes.count("refused")) == (10, 14)
    assert coins.get_balances(["alice", "shop"]) == {"alice": 0, "shop": 100}
    assert gems.get_balances(["alice", "shop"]) == {"alice": 10, "shop": 190}


def test_banks_on_two_loops_cannot_exchange_and_nothing_changes(pair: Pair, exchange_backend: BoundBackend) -> None:
    coins = pair.coins
    with TokenBank(_settings(exchange_backend, "g", initial_supply=50, decimals=0)) as gems:
        gems.transfer("treasury", "shop", 20)
        before = (pair.state()[0], _snapshot(gems))
        with pytest.raises(ConfigurationError, match="share_loop_with"):
            exchange((coins, "alice", 1), (gems, "shop", 1))
        with pytest.raises(ConfigurationError, match="share_loop_with"):
            exchange((gems, "shop", 1), (coins, "alice", 1))
        assert (pair.state()[0], _snapshot(gems)) == before


def test_banks_on_two_stores_get_the_store_error_first(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    def settings(name: str) -> Any:
        return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/{name}.db", symbol=name)

    with TokenBank(settings("COIN")) as coins, TokenBank(settings("GEM")) as gems:
        with pytest.raises(ConfigurationError, match="different databases"):
            exchange((coins, "treasury", 1), (gems, "treasury", 1))
        with (
            TokenBank(settings("GEM"), share_loop_with=coins) as shared,
            pytest.raises(ConfigurationError, match="different databases"),
        ):
            exchange((coins, "treasury", 1), (shared, "treasury", 1))


def test_bad_sides_are_typed_errors(pair: Pair, exchange_backend: BoundBackend) -> None:
    coins, gems = pair.coins, pair.gems
    before = pair.state()
    cases: list[tuple[Any, Any, dict[str, Any], type[TokenBankError], str]] = [
        ((coins.async_bank, "alice", 1), (gems, "shop", 1), {}, InvalidRequestError, "pay"),
        ((coins, "alice", 1), "gems", {}, InvalidRequestError, "receive"),
        ((coins, "alice", 1), (gems, "shop"), {}, InvalidRequestError, "receive"),
        ((coins, "alice", 1), (coins, "shop", 1), {}, InvalidRequestError, "receive"),
        ((coins, "alice", 1), (gems, "alice", 1), {}, InvalidAccountError, "receive.user_id"),
        ((coins, "alice", 1.5), (gems, "shop", 1), {}, InvalidAmountError, "pay.amount"),
        ((coins, "alice", 1), (gems, "shop", 1), {"rate": 2}, InvalidRequestError, "rate"),
        (
            (coins, "alice", 1),
            (gems, "shop", 1),
            {"metadata": {"exchange_id": "mine"}},
            InvalidRequestError,
            "metadata",
        ),
    ]
    for pay, receive, extra, error, param in cases:
        with pytest.raises(error) as raised:
            exchange(pay, receive, **extra)
        assert_error(raised.value, error)
        assert raised.value.param == param, (pay, receive, extra)
    unopened = TokenBank(_settings(exchange_backend, "u"), share_loop_with=coins)
    try:
        with pytest.raises(InvalidRequestError, match="not open") as raised:
            exchange((coins, "alice", 1), (unopened, "shop", 1))
        assert raised.value.param == "receive"
    finally:
        unopened.close()
    assert pair.state() == before


def test_a_shared_loop_outlives_its_first_bank(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    def loop_threads() -> int:
        return sum(thread.name == "tokenbank-loop" for thread in threading.enumerate())

    url = f"sqlite+aiosqlite:///{tmp_path}/tb.db"
    before = loop_threads()
    coins = TokenBank(database_url=url, symbol="COIN", initial_supply=10)
    coins.open()
    gems = TokenBank(database_url=url, symbol="GEM", initial_supply=10, share_loop_with=coins)
    gems.open()
    assert loop_threads() == before + 1  # one loop for both banks
    coins.close()
    with pytest.raises(RuntimeError, match="closed"):
        coins.get_balance("treasury")
    assert gems.get_balance("treasury") == 10  # the loop keeps running for the bank still open
    with pytest.raises(InvalidRequestError, match="not open") as raised:
        exchange((coins, "treasury", 1), (gems, "treasury", 1))
    assert raised.value.param == "pay"
    with pytest.raises(ConfigurationError, match="closed"):
        TokenBank(database_url=url, symbol="GEM2", share_loop_with=coins)
    with pytest.raises(ConfigurationError, match="blocking bank"):
        TokenBank(database_url=url, symbol="GEM2", share_loop_with=gems.async_bank)  # type: ignore[arg-type]
    gems.close()
    assert loop_threads() == before  # the last bank stopped the loop
