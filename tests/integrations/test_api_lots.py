"""Credit lots over HTTP: ``POST /grants``, ``POST /vestings`` and ``GET /accounts/{id}/lots`` in ``create_app``
(behind its API key) and opt-in in ``create_router(lots=True)``, with replays and bad input as documented."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI, HTTPException, Request

from tests.backends import BoundBackend
from tests.integrations.conftest import API_KEY, AUTH, assert_error
from tokenbank import TokenBank
from tokenbank.integrations.fastapi import REPLAYED_HEADER, Action, create_app, create_router, install_error_handlers
from tokenbank.testing import ManualClock


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_grant_vest_and_read_lots_over_http(api_backend: BoundBackend) -> None:
    clock = ManualClock()
    async with TokenBank(api_backend.settings(initial_supply=1000), clock=clock) as bank:
        expiry = (clock.now() + timedelta(days=30)).isoformat()
        body = {"to_user_id": "alice", "amount": "50.00", "expires_at": expiry, "category": "promo"}
        async with _client(create_app(bank=bank, api_key=API_KEY)) as client:
            assert (await client.post("/grants", json=body)).status_code == 401
            created = await client.post("/grants", json=body, headers={**AUTH, "Idempotency-Key": "g1"})
            assert created.status_code == 201, created.text
            grant = created.json()
            assert (grant["type"], grant["to_user_id"], grant["amount"], grant["category"]) == (
                "grant", "alice", "50.00", "promo"
            )  # fmt: skip
            replay = await client.post("/grants", json=body, headers={**AUTH, "Idempotency-Key": "g1"})
            assert replay.status_code == 200 and replay.headers[REPLAYED_HEADER] == "true"
            assert replay.json()["id"] == grant["id"]

            vesting = {"to_user_id": "alice", "amount": "30.00", "start": clock.now().isoformat(),
                       "duration_seconds": 3 * 86400, "interval_seconds": 86400}  # fmt: skip
            vested = await client.post("/vestings", json=vesting, headers=AUTH)
            assert vested.status_code == 201, vested.text
            assert [lot["amount"] for lot in vested.json()["lots"]] == ["10.00", "10.00", "10.00"]

            spent = await client.post("/transfers", json={"from_user_id": "alice", "to_user_id": "bob",
                                                          "amount": "20.00"}, headers=AUTH)  # fmt: skip
            assert spent.json()["lot_moves"] == [{"lot_id": grant["id"], "amount": "20.00"}]
            lots = (await client.get("/accounts/alice/lots", headers=AUTH)).json()
            assert (lots["available"], lots["pending"], lots["expired"]) == ("30.00", "30.00", "0.00")
            assert lots["lots"][0]["id"] == grant["id"] and len(lots["lots"]) == 4

            bad = await client.post("/grants", json={**body, "expires_at": "2000-01-01T00:00:00Z"}, headers=AUTH)
            assert_error(bad, 422, "invalid_request", "expires_at")
            self_funded = await client.post("/grants", json={**body, "amount": "1.00", "from_user_id": "alice",
                                                        "to_user_id": "alice"}, headers=AUTH)  # fmt: skip
            assert_error(self_funded, 422, "invalid_request", "from_user_id")
            assert await bank.get_total_supply() == 1080


async def test_lot_routes_are_opt_in_and_authorized(api_bank: TokenBank) -> None:
    seen: list[tuple[str, str | None]] = []

    def operators_grant(request: Request, action: str, user_id: str | None) -> None:
        """Only the operator grants (a grant mints); owners read their own lots."""
        seen.append((action, user_id))
        caller = request.headers.get("x-user")
        if action == Action.GRANT and caller != "operator":
            raise HTTPException(403, "operators only")
        if action == Action.LOTS_READ and caller not in (user_id, "operator"):
            raise HTTPException(403, "not your lots")

    closed = FastAPI()
    closed.state.token_bank = api_bank
    closed.include_router(create_router(authorize=operators_grant))
    async with _client(closed) as client:
        assert (await client.post("/grants", json={})).status_code == 404

    app = FastAPI()
    app.state.token_bank = api_bank
    app.include_router(create_router(authorize=operators_grant, lots=True))
    install_error_handlers(app)
    body = {"to_user_id": "alice", "amount": "5.00"}
    async with _client(app) as client:
        refused = await client.post("/grants", json=body, headers={"x-user": "alice"})
        assert refused.status_code == 403 and await api_bank.get_balance("alice") == 0
        assert (await client.post("/grants", json=body, headers={"x-user": "operator"})).status_code == 201
        assert (await client.get("/accounts/alice/lots", headers={"x-user": "bob"})).status_code == 403
        mine = await client.get("/accounts/alice/lots", headers={"x-user": "alice"})
        assert mine.status_code == 200 and mine.json()["available"] == "5.00"
    assert (Action.GRANT.value, "alice") in seen and (Action.LOTS_READ.value, "alice") in seen
