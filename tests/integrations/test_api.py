"""Every endpoint of the REST API that create_router builds (docs/fastapi.md) over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from tests.backends import BoundBackend
from tests.integrations.conftest import API_KEY, AUTH, BASE_URL, assert_error, fund
from tokenbank import TokenBank
from tokenbank.integrations.fastapi import create_app


async def test_token_info_has_supplies(client: httpx.AsyncClient) -> None:
    await fund(client, "alice", "250")
    response = await client.get("/token")
    assert response.status_code == 200
    body = response.json()
    assert body["total_supply"] == "1000.00"
    assert body["circulating_supply"] == "250.00"  # the treasury is excluded
    assert body["max_supply"] is None
    assert body["initial_supply"] == "1000.00"
    assert body["decimals"] == 2


async def test_balance_and_formatted_balance(client: httpx.AsyncClient, api_bank: TokenBank) -> None:
    await fund(client, "alice", "12.5")
    plain = await client.get("/accounts/alice/balance")
    assert plain.json() == {"user_id": "alice", "balance": "12.50"}
    formatted = await client.get("/accounts/alice/balance", params={"format": "1"})
    assert formatted.json() == {
        "user_id": "alice",
        "balance": "12.50",
        "formatted": f"12.50 {api_bank.settings.symbol}",
    }
    assert (await client.post("/mint", json={"to_user_id": "alice", "amount": "1222"})).status_code == 201
    grouped = (await client.get("/accounts/alice/balance", params={"format": "1"})).json()["formatted"]
    assert grouped == f"1,234.50 {api_bank.settings.symbol}"  # bank.formatter's defaults
    nobody = await client.get("/accounts/nobody%3A%7B%2A%7D/balance")  # ':{*}' is data, not syntax
    assert nobody.json() == {"user_id": "nobody:{*}", "balance": "0.00"}


async def test_transfer_returns_the_transaction(client: httpx.AsyncClient, api_bank: TokenBank) -> None:
    await fund(client, "alice", "100")
    response = await client.post(
        "/transfers",
        json={
            "from_user_id": "alice",
            "to_user_id": "bob",
            "amount": "2.50",
            "metadata": {"order": 42},
            "reason": "tea",
        },
    )
    assert response.status_code == 201
    tx = response.json()
    assert tx["type"] == "transfer"
    assert (tx["from_user_id"], tx["to_user_id"], tx["amount"]) == ("alice", "bob", "2.50")
    assert tx["metadata"] == {"order": 42} and tx["reason"] == "tea"
    assert await api_bank.get_balance("bob") == Decimal("2.50")
    fetched = await client.get(f"/transactions/{tx['id']}")
    assert fetched.status_code == 200 and fetched.json() == tx


async def test_idempotent_retry_returns_the_same_transaction(client: httpx.AsyncClient, api_bank: TokenBank) -> None:
    await fund(client, "alice", "100")
    body = {"from_user_id": "alice", "to_user_id": "bob", "amount": "10"}
    first = await client.post("/transfers", json=body, headers={"Idempotency-Key": "order-42"})
    retry = await client.post("/transfers", json=body, headers={"Idempotency-Key": "order-42"})
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    assert retry.json()["idempotency_key"] == "order-42"
    assert await api_bank.get_balance("bob") == Decimal(10)
    other = await client.post("/transfers", json={**body, "amount": "11"}, headers={"Idempotency-Key": "order-42"})
    assert_error(other, 409, "idempotency_conflict")
    assert await api_bank.get_balance("bob") == Decimal(10)


async def test_history_pages_with_cursor_and_type(client: httpx.AsyncClient) -> None:
    await fund(client, "alice", "100")
    for amount in ("1", "2", "3"):
        response = await client.post(
            "/transfers", json={"from_user_id": "alice", "to_user_id": "bob", "amount": amount}
        )
        assert response.status_code == 201
    first = (await client.get("/accounts/alice/transactions", params={"limit": 2})).json()
    assert [tx["amount"] for tx in first["items"]] == ["3.00", "2.00"]
    assert first["next_cursor"]
    second = (
        await client.get("/accounts/alice/transactions", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [tx["amount"] for tx in second["items"]] == ["1.00", "100.00"]
    assert second["next_cursor"] is None
    mints = (await client.get("/accounts/treasury/transactions", params={"type": "mint"})).json()
    assert [tx["type"] for tx in mints["items"]] == ["mint"]
    both = await client.get("/accounts/treasury/transactions", params=[("type", "mint"), ("type", "transfer")])
    assert {tx["type"] for tx in both.json()["items"]} == {"mint", "transfer"}


async def test_rank_and_leaderboard(client: httpx.AsyncClient) -> None:
    await fund(client, "alice", "30")
    await fund(client, "bob", "50")
    assert (await client.get("/accounts/bob/rank")).json() == {"user_id": "bob", "rank": 1, "balance": "50.00"}
    assert (await client.get("/accounts/alice/rank")).json() == {"user_id": "alice", "rank": 2, "balance": "30.00"}
    assert (await client.get("/accounts/carol/rank")).json() == {"user_id": "carol", "rank": None, "balance": "0.00"}
    board = await client.get("/leaderboard", params={"limit": 10})
    assert board.json() == [
        {"user_id": "bob", "balance": "50.00", "rank": 1},
        {"user_id": "alice", "balance": "30.00", "rank": 2},
    ]
    assert (await client.get("/leaderboard", params={"limit": 1, "offset": 1})).json() == [
        {"user_id": "alice", "balance": "30.00", "rank": 2}
    ]


async def test_batch_reports_each_item(client: httpx.AsyncClient, api_bank: TokenBank) -> None:
    await fund(client, "alice", "10")
    items = [
        {"from_user_id": "alice", "to_user_id": "bob", "amount": "4"},
        {"from_user_id": "alice", "to_user_id": "bob", "amount": "100"},
        {"from_user_id": "alice", "to_user_id": "carol", "amount": "1", "idempotency_key": "b-3"},
    ]
    response = await client.post("/transfers/batch", json={"transfers": items})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["ok"] for r in results] == [True, False, True]
    assert results[1]["error"]["code"] == "insufficient_balance" and results[1]["transaction"] is None
    assert results[2]["transaction"]["idempotency_key"] == "b-3"
    atomic = await client.post("/transfers/batch", json={"transfers": items[:2], "atomic": True})
    assert atomic.status_code == 409
    assert [r["error"]["code"] for r in atomic.json()["results"]] == ["batch_aborted", "insufficient_balance"]
    assert await api_bank.get_balances(["alice", "bob", "carol"]) == {
        "alice": Decimal(5),
        "bob": Decimal(4),
        "carol": Decimal(1),
    }


async def test_mint_and_burn(client: httpx.AsyncClient, api_bank: TokenBank) -> None:
    minted = await client.post("/mint", json={"to_user_id": "alice", "amount": "5", "reason": "welcome bonus"})
    assert minted.status_code == 201
    assert minted.json()["type"] == "mint" and minted.json()["reason"] == "welcome bonus"
    burned = await client.post("/burn", json={"user_id": "alice", "amount": "2"}, headers={"Idempotency-Key": "burn-1"})
    assert burned.status_code == 201 and burned.json()["type"] == "burn"
    assert_error(await client.post("/burn", json={"user_id": "alice", "amount": "4"}), 409, "insufficient_balance")
    assert await api_bank.get_total_supply() == Decimal(1003)


async def test_supply_cap(api_backend: BoundBackend) -> None:
    async with TokenBank(api_backend.settings(initial_supply=100, max_supply=150)) as bank:
        app = create_app(bank=bank, api_key=API_KEY)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers=AUTH) as c:
            assert (await c.get("/token")).json()["max_supply"] == "150.00"
            assert_error(await c.post("/mint", json={"to_user_id": "a", "amount": "51"}), 409, "supply_cap_exceeded")
            assert (await c.post("/mint", json={"to_user_id": "a", "amount": "50"})).status_code == 201


async def test_hold_capture_and_void(client: httpx.AsyncClient, api_bank: TokenBank) -> None:
    await fund(client, "alice", "100")
    body = {"from_user_id": "alice", "to_user_id": "shop", "amount": "30", "expires_in_seconds": 600}
    created = await client.post("/holds", json=body)
    assert created.status_code == 201
    hold = created.json()
    assert hold["status"] == "pending" and hold["amount"] == "30.00"
    assert await api_bank.get_balance("alice") == Decimal(70)
    captured = await client.post(f"/holds/{hold['id']}/capture", json={"amount": "10"})
    assert captured.status_code == 200
    assert captured.json()["status"] == "captured" and captured.json()["captured_amount"] == "10.00"
    assert await api_bank.get_balances(["alice", "shop"]) == {"alice": Decimal(90), "shop": Decimal(10)}
    assert_error(await client.post(f"/holds/{hold['id']}/void"), 409, "hold_state")

    second = (await client.post("/holds", json=body)).json()
    voided = await client.post(f"/holds/{second['id']}/void", json={"reason": "cancelled"})
    assert voided.status_code == 200 and voided.json()["status"] == "voided"
    third = (await client.post("/holds", json=body)).json()
    whole = await client.post(f"/holds/{third['id']}/capture")  # no body: capture all
    assert whole.json()["captured_amount"] == "30.00"
    assert_error(await client.post("/holds/00000000-0000-7000-8000-000000000000/void"), 404, "hold_not_found")
    assert_error(await client.post("/holds/00000000-0000-7000-8000-000000000000/capture"), 404, "hold_not_found")


async def test_reverse(client: httpx.AsyncClient, api_bank: TokenBank) -> None:
    await fund(client, "alice", "20")
    tx = (await client.post("/transfers", json={"from_user_id": "alice", "to_user_id": "bob", "amount": "5"})).json()
    reversed_ = await client.post(f"/transactions/{tx['id']}/reverse", json={"reason": "refund"})
    assert reversed_.status_code == 201
    assert reversed_.json()["type"] == "reversal" and reversed_.json()["reverses_id"] == tx["id"]
    assert await api_bank.get_balance("alice") == Decimal(20)
    assert_error(
        await client.post(f"/transactions/{tx['id']}/reverse", json={"reason": "again"}), 409, "transaction_state"
    )
    unknown = "00000000-0000-7000-8000-000000000000"
    assert_error(
        await client.post(f"/transactions/{unknown}/reverse", json={"reason": "x"}), 404, "transaction_not_found"
    )
    assert_error(await client.get(f"/transactions/{unknown}"), 404, "transaction_not_found")


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    assert {check["name"] for check in body["checks"]} == {"storage", "token"}
    await fund(client, "alice", "1")
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    for name in (
        "tokenbank_info",
        "tokenbank_operations_total",
        "tokenbank_operation_duration_seconds",
        "tokenbank_total_supply 1000.0",
        "tokenbank_circulating_supply 1.0",
        "tokenbank_supply_refresh_errors_total",
    ):
        assert name in text, name


async def test_openapi_amounts_are_strings(app: FastAPI) -> None:
    schema = app.openapi()
    transfer = schema["components"]["schemas"]["TransferBody"]["properties"]["amount"]
    assert transfer["type"] == "string" and transfer["pattern"]
    assert schema["components"]["schemas"]["Transaction"]["properties"]["amount"]["type"] == "string"
    post = schema["paths"]["/transfers"]["post"]
    assert {p["name"] for p in post["parameters"]} == {"Idempotency-Key"}
    assert {"201", "409", "422"} <= set(post["responses"])
    assert schema["paths"]["/transfers"]["post"]["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    expected = {
        "/token", "/accounts/{user_id}/balance", "/accounts/{user_id}/transactions", "/accounts/{user_id}/rank",
        "/accounts/{user_id}/events", "/transfers", "/transfers/batch", "/splits", "/mint", "/burn", "/holds",
        "/holds/{hold_id}/capture", "/holds/{hold_id}/void", "/transactions/{transaction_id}/reverse",
        "/transactions/{transaction_id}", "/leaderboard", "/health", "/metrics", "/accounts/{user_id}",
        "/accounts/{user_id}/freeze", "/accounts/{user_id}/unfreeze", "/accounts/{user_id}/close",
        "/accounts/{user_id}/limits", "/stakes", "/stakes/{stake_id}", "/stakes/{stake_id}/unstake", "/grants",
        "/vestings", "/accounts/{user_id}/lots",
    }  # fmt: skip
    assert set(schema["paths"]) == expected


async def test_storage_unavailable_is_503(clean_env: pytest.MonkeyPatch) -> None:
    # A PostgreSQL URL where nothing listens: the bank is never opened, requests reach the dead store.
    bank = TokenBank(database_url="postgresql+asyncpg://postgres@127.0.0.1:9/nothing", hold_sweep_interval=0)
    app = create_app(bank=bank, api_key=API_KEY)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers=AUTH) as c:
            assert_error(await c.get("/accounts/alice/balance"), 503, "storage_unavailable")
            response = await c.post("/transfers", json={"from_user_id": "a", "to_user_id": "b", "amount": "1"})
            assert_error(response, 503, "storage_unavailable")
            assert response.headers["retry-after"] == "1"
            health = await c.get("/health")
            assert health.status_code == 503 and health.json()["status"] == "down"
    finally:
        await bank.close()
