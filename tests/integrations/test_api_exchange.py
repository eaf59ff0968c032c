"""``POST /exchanges`` over HTTP: opt-in through ``create_router(exchange_banks=...)``, guarded twice by
``authorize`` (the paying user, then the counterparty), with replays, refusals and bad requests as documented."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request

from tests.backends import BoundBackend, unique
from tests.integrations.conftest import API_KEY, AUTH, assert_error
from tests.support import open_bank, snapshot
from tokenbank import ConfigurationError, TokenBank
from tokenbank.integrations.fastapi import (
    REPLAYED_HEADER,
    Action,
    create_app,
    create_router,
    install_error_handlers,
)

ACCOUNTS = ("treasury", "alice", "shop")


@pytest.fixture
async def gems(api_backend: BoundBackend, api_bank: TokenBank) -> AsyncIterator[TokenBank]:
    """The second token on the API bank's store (the API bank holds coins)."""
    async with open_bank(api_backend, symbol=unique("g"), initial_supply=500, decimals=0) as bank:
        yield bank


async def _client(coins: TokenBank, gems: TokenBank, seen: list[tuple[str, str | None]]) -> httpx.AsyncClient:
    def shop_prices_only(request: Request, action: str, user_id: str | None) -> None:
        """Users act on their own account (X-User); only the shop service may make the shop pay."""
        seen.append((action, user_id))
        caller = request.headers.get("x-user")
        if action == Action.EXCHANGE_COUNTERPARTY and caller != "shop-service":
            raise HTTPException(403, "only the shop sets its prices")
        if action == Action.EXCHANGE and caller not in (user_id, "shop-service"):
            raise HTTPException(403, "not your account")

    app = FastAPI()
    app.state.token_bank = coins
    app.include_router(create_router(authorize=shop_prices_only, exchange_banks={gems.settings.symbol: gems}))
    install_error_handlers(app)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_an_exchange_over_http(api_backend: BoundBackend) -> None:
    async with (
        open_bank(api_backend, initial_supply=1000, ledger_group="shop") as coins,
        open_bank(api_backend, symbol=unique("g"), initial_supply=500, decimals=0, ledger_group="shop") as gems,
    ):
        await coins.transfer("treasury", "alice", 100)
        await gems.transfer("treasury", "shop", 100)
        seen: list[tuple[str, str | None]] = []
        c, g = coins.settings.symbol, gems.settings.symbol
        body: dict[str, Any] = {
            "pay": {"symbol": c, "user_id": "alice", "amount": "25.50"},
            "receive": {"symbol": g, "user_id": "shop", "amount": "10"},
            "metadata": {"offer": "starter"},
        }
        async with await _client(coins, gems, seen) as client:
            before = (await snapshot(coins, ACCOUNTS), await snapshot(gems, ACCOUNTS))
            refused = await client.post("/exchanges", json=body, headers={"X-User": "alice"})
            assert_error(refused, 403, "forbidden")
            assert (await snapshot(coins, ACCOUNTS), await snapshot(gems, ACCOUNTS)) == before

            shop = {"X-User": "shop-service", "Idempotency-Key": "offer-1"}
            created = await client.post("/exchanges", json=body, headers=shop)
            assert created.status_code == 201, created.text
            out = created.json()
            assert (out["pay_symbol"], out["receive_symbol"]) == (c, g)
            assert (out["pay"]["from_user_id"], out["pay"]["to_user_id"], out["pay"]["amount"]) == (
                "alice", "shop", "25.50",
            )  # fmt: skip
            assert (out["receive"]["from_user_id"], out["receive"]["to_user_id"], out["receive"]["amount"]) == (
                "shop", "alice", "10",
            )  # fmt: skip
            assert out["pay"]["metadata"]["exchange_tx_id"] == out["receive"]["id"]
            assert out["receive"]["metadata"]["exchange_id"] == out["id"]
            again = await client.post("/exchanges", json=body, headers=shop)
            assert again.status_code == 200 and again.headers[REPLAYED_HEADER] == "true"
            assert again.json() == out
            assert await coins.get_balance("alice") == Decimal("74.50")
            assert await gems.get_balance("alice") == 10

            before = (await snapshot(coins, ACCOUNTS), await snapshot(gems, ACCOUNTS))
            conflict = {**body, "reason": "other"}
            assert_error(await client.post("/exchanges", json=conflict, headers=shop), 409, "idempotency_conflict")
            shop = {"X-User": "shop-service"}
            too_much = {**body, "receive": {"symbol": g, "user_id": "shop", "amount": "91"}}
            assert_error(await client.post("/exchanges", json=too_much, headers=shop), 409, "insufficient_balance",
                         "receive.amount")  # fmt: skip
            unknown = {**body, "receive": {"symbol": "NOPE", "user_id": "shop", "amount": "1"}}
            assert_error(await client.post("/exchanges", json=unknown, headers=shop), 422, "invalid_request",
                         "receive.symbol")  # fmt: skip
            same = {**body, "receive": {"symbol": c, "user_id": "shop", "amount": "1"}}
            assert_error(await client.post("/exchanges", json=same, headers=shop), 422, "invalid_request", "receive")
            number = {**body, "pay": {"symbol": c, "user_id": "alice", "amount": 1}}
            assert_error(await client.post("/exchanges", json=number, headers=shop), 422, "invalid_amount")
            assert (await snapshot(coins, ACCOUNTS), await snapshot(gems, ACCOUNTS)) == before
        assert seen[:4] == [
            ("exchange", "alice"), ("exchange.counterparty", "shop"), ("exchange", "alice"),
            ("exchange.counterparty", "shop"),
        ]  # fmt: skip


async def test_the_exchange_route_is_opt_in(api_bank: TokenBank, gems: TokenBank) -> None:
    def paths(**options: Any) -> set[str]:
        return {getattr(route, "path", "") for route in create_router(allow_anonymous=True, **options).routes}

    assert "/exchanges" not in paths()
    assert "/exchanges" in paths(exchange_banks={gems.settings.symbol: gems})
    for wrong in ({}, {"OTHER": gems}, {gems.settings.symbol: "bank"}):
        with pytest.raises(ConfigurationError):
            create_router(allow_anonymous=True, exchange_banks=wrong)  # type: ignore[arg-type]


async def test_create_app_serves_exchanges_behind_its_api_key(api_backend: BoundBackend) -> None:
    async with (
        open_bank(api_backend, initial_supply=1000, ledger_group="shop") as coins,
        open_bank(api_backend, symbol=unique("g"), initial_supply=500, decimals=0, ledger_group="shop") as gems,
    ):
        await coins.transfer("treasury", "alice", 100)
        await gems.transfer("treasury", "shop", 100)
        c, g = coins.settings.symbol, gems.settings.symbol
        body: dict[str, Any] = {
            "pay": {"symbol": c, "user_id": "alice", "amount": "25.50"},
            "receive": {"symbol": g, "user_id": "shop", "amount": "10"},
        }
        app = create_app(bank=coins, api_key=API_KEY, exchange_banks={g: gems})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            before = (await snapshot(coins, ACCOUNTS), await snapshot(gems, ACCOUNTS))
            assert_error(await client.post("/exchanges", json=body), 401, "unauthorized")
            too_much = {**body, "pay": {"symbol": c, "user_id": "alice", "amount": "100.01"}}
            assert_error(await client.post("/exchanges", json=too_much, headers=AUTH), 409, "insufficient_balance",
                         "pay.amount")  # fmt: skip
            assert (await snapshot(coins, ACCOUNTS), await snapshot(gems, ACCOUNTS)) == before

            keyed = {**AUTH, "Idempotency-Key": "order-1"}
            created = await client.post("/exchanges", json=body, headers=keyed)
            assert created.status_code == 201, created.text
            out = created.json()
            assert (out["pay_symbol"], out["receive_symbol"]) == (c, g)
            again = await client.post("/exchanges", json=body, headers=keyed)
            assert again.status_code == 200 and again.headers[REPLAYED_HEADER] == "true"
            assert again.json() == out
        assert await coins.get_balances(["alice", "shop"]) == {"alice": Decimal("74.50"), "shop": Decimal("25.50")}
        assert await gems.get_balances(["alice", "shop"]) == {"alice": 10, "shop": 90}

        without = create_app(bank=coins, api_key=API_KEY)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=without), base_url="http://t") as client:
            assert (await client.post("/exchanges", json=body, headers=AUTH)).status_code in (404, 405)


async def test_create_app_from_settings_exchanges_with_the_banks_given(api_backend: BoundBackend) -> None:
    settings = api_backend.settings(initial_supply=1000, ledger_group="shop")
    async with open_bank(api_backend, symbol=unique("g"), initial_supply=500, decimals=0, ledger_group="shop") as gems:
        await gems.transfer("treasury", "shop", 100)
        app = create_app(settings, API_KEY, exchange_banks={gems.settings.symbol: gems})
        body = {
            "pay": {"symbol": settings.symbol, "user_id": "treasury", "amount": "5"},
            "receive": {"symbol": gems.settings.symbol, "user_id": "shop", "amount": "2"},
        }
        # The lifespan opens (and closes) the app's own bank; the exchange banks stay the caller's.
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
        ):
            created = await client.post("/exchanges", json=body, headers=AUTH)
            assert created.status_code == 201, created.text
            balance = await client.get("/accounts/shop/balance")
            assert balance.json()["balance"] == "5.00"
        assert gems.is_open
        assert await gems.get_balances(["treasury", "shop"]) == {"treasury": 402, "shop": 98}


def test_create_app_refuses_bad_exchange_banks(api_bank: TokenBank, gems: TokenBank) -> None:
    wrongs: list[Any] = [{}, {"OTHER": gems}, {gems.settings.symbol: "bank"}, [gems]]
    for wrong in wrongs:
        with pytest.raises(ConfigurationError, match="exchange_banks"):
            create_app(bank=api_bank, api_key=API_KEY, exchange_banks=wrong)
