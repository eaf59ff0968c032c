"""``POST /splits``: one payment shared by percentages and amounts over HTTP, replays, refusals, the guard."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Request

from tests.integrations.conftest import assert_error, fund
from tests.support import snapshot
from tokenbank import TokenBank
from tokenbank.integrations.fastapi import create_router, install_error_handlers

PURCHASE: dict[str, Any] = {
    "from_user_id": "alice",
    "amount": "100.00",
    "legs": [{"to_user_id": "platform", "share": "10%"}, {"to_user_id": "referrer", "share": "2.5%"}],
    "remainder_to": "creator",
    "metadata": {"order": 42},
    "reason": "purchase",
}


async def test_a_split_returns_its_transactions_and_replays(client: httpx.AsyncClient, api_bank: TokenBank) -> None:
    await fund(client, "alice", "150")
    key = {"Idempotency-Key": "purchase-42"}
    created = await client.post("/splits", json=PURCHASE, headers=key)
    assert created.status_code == 201, created.text
    txs = created.json()
    assert [(t["to_user_id"], t["amount"]) for t in txs] == [
        ("platform", "10.00"), ("referrer", "2.50"), ("creator", "87.50")
    ]  # fmt: skip
    split_id = txs[0]["metadata"]["split_id"]
    assert all(t["metadata"] == {"order": 42, "split_id": split_id} for t in txs)
    assert [t["idempotency_key"] for t in txs] == ["purchase-42:0", "purchase-42:1", "purchase-42:2"]

    again = await client.post("/splits", json=PURCHASE, headers=key)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == txs
    changed = {**PURCHASE, "legs": [{"to_user_id": "platform", "share": "11%"}]}
    assert_error(
        await client.post("/splits", json=changed, headers=key), 409, "idempotency_conflict", "idempotency_key"
    )
    assert await api_bank.get_balance("alice") == Decimal("50.00")

    before = await snapshot(api_bank, ("alice", "platform", "referrer", "creator"))
    refusals: list[tuple[dict[str, Any], int, str, str]] = [
        ({"amount": "50.01"}, 409, "insufficient_balance", "amount"),
        ({"legs": [{"to_user_id": "platform", "share": "1e2%"}]}, 422, "invalid_amount", "legs.0.share"),
        ({"legs": [{"to_user_id": "platform", "share": "60%"}, {"to_user_id": "referrer", "share": "41%"}]},
         422, "invalid_amount", "legs"),
        ({"legs": [{"to_user_id": "platform", "share": "1"}, {"to_user_id": "platform", "share": "2"}]},
         422, "invalid_account", "legs.1.to_user_id"),
        ({"legs": [{"to_user_id": f"u{n}", "share": "1"} for n in range(101)]}, 422, "invalid_request", "legs"),
        ({"remainder_to": "alice"}, 422, "invalid_account", "remainder_to"),
        ({"metadata": {"split_id": "mine"}}, 422, "invalid_request", "metadata"),
    ]  # fmt: skip
    for change, status, code, param in refusals:
        assert_error(await client.post("/splits", json={**PURCHASE, **change}), status, code, param)
    insufficient = (await client.post("/splits", json={**PURCHASE, "amount": "50.01"})).json()
    assert "50.00 available, 50.01 requested" in insufficient["message"]
    assert await snapshot(api_bank, ("alice", "platform", "referrer", "creator")) == before


async def test_the_guard_sees_the_sender_and_the_schema_lists_the_route(api_bank: TokenBank) -> None:
    seen: list[tuple[str, str | None]] = []

    def hook(request: Request, action: str, user_id: str | None) -> None:
        seen.append((action, user_id))
        if user_id == "mallory":
            raise HTTPException(403, "not for mallory")

    app = FastAPI()
    app.state.token_bank = api_bank
    app.include_router(create_router(authorize=hook, decimals=2))
    install_error_handlers(app)
    await api_bank.transfer("treasury", "mallory", "100")
    before = await snapshot(api_bank, ("mallory", "platform", "creator"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        refused = await client.post("/splits", json={**PURCHASE, "from_user_id": "mallory"})
        assert_error(refused, 403, "forbidden")
        assert await snapshot(api_bank, ("mallory", "platform", "creator")) == before
        too_precise = {**PURCHASE, "from_user_id": "treasury", "legs": [{"to_user_id": "a", "share": "0.001"}]}
        assert_error(await client.post("/splits", json=too_precise), 422, "invalid_amount", "legs.0.share")
    assert seen == [("transfer", "mallory")]  # a body the schema refuses never reaches the hook
    route = app.openapi()["paths"]["/splits"]["post"]
    assert {"200", "201", "409", "422"} <= set(route["responses"])
    assert route["responses"]["201"]["content"]["application/json"]["schema"]["type"] == "array"
