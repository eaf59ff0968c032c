"""Staking over HTTP: ``POST /stakes``, ``GET /stakes/{id}``, ``POST /stakes/{id}/unstake`` in ``create_app`` (behind
its API key) and opt-in in ``create_router(staking=True)``, with replays, early and unknown unstakes as documented."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
from fastapi import FastAPI, HTTPException, Request

from tests.backends import BoundBackend
from tests.integrations.conftest import API_KEY, AUTH, assert_error
from tokenbank import TokenBank
from tokenbank.integrations.fastapi import REPLAYED_HEADER, Action, create_app, create_router, install_error_handlers
from tokenbank.testing import ManualClock


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_stake_and_unstake_over_http(api_backend: BoundBackend) -> None:
    clock = ManualClock()
    async with TokenBank(api_backend.settings(initial_supply=1000), clock=clock) as bank:
        await bank.transfer("treasury", "alice", 100)
        until = (clock.now() + timedelta(days=7)).isoformat()
        body = {"user_id": "alice", "amount": "60.00", "until": until, "reward": "1.50", "metadata": {"pool": "week"}}
        async with _client(create_app(bank=bank, api_key=API_KEY)) as client:
            assert (await client.post("/stakes", json=body)).status_code == 401
            created = await client.post("/stakes", json=body, headers={**AUTH, "Idempotency-Key": "s1"})
            assert created.status_code == 201, created.text
            stake = created.json()
            assert (stake["user_id"], stake["amount"], stake["reward"], stake["status"]) == (
                "alice", "60.00", "1.50", "staked"
            )  # fmt: skip
            assert stake["metadata"] == {"pool": "week"}
            replay = await client.post("/stakes", json=body, headers={**AUTH, "Idempotency-Key": "s1"})
            assert replay.status_code == 200 and replay.headers[REPLAYED_HEADER] == "true"
            assert replay.json()["id"] == stake["id"]
            assert await bank.get_balance("alice") == 40

            early = await client.post(f"/stakes/{stake['id']}/unstake", headers=AUTH)
            assert_error(early, 409, "stake_locked", "stake_id")
            void = await client.post(f"/holds/{stake['id']}/void", headers=AUTH)
            assert_error(void, 409, "hold_state", "hold_id")
            assert (await client.get(f"/stakes/{stake['id']}")).json()["status"] == "staked"

            clock.advance(timedelta(days=7))
            released = await client.post(f"/stakes/{stake['id']}/unstake", json={"reason": "week over"}, headers=AUTH)
            assert released.status_code == 200 and released.json()["status"] == "released"
            assert REPLAYED_HEADER not in released.headers
            again = await client.post(f"/stakes/{stake['id']}/unstake", headers=AUTH)
            assert again.status_code == 200 and again.headers[REPLAYED_HEADER] == "true"
            assert await bank.get_balance("alice") == Decimal("101.50") and await bank.get_total_supply() == Decimal(
                "1001.50"
            )

            missing = await client.get("/stakes/00000000-0000-75ac-8000-000000000000")
            assert_error(missing, 404, "stake_not_found", "stake_id")
            bad = await client.post("/stakes", json={**body, "until": "2000-01-01T00:00:00Z"}, headers=AUTH)
            assert_error(bad, 422, "invalid_request", "until")
            assert await bank.get_balance("alice") == Decimal("101.50")


async def test_staking_routes_are_opt_in_and_authorized_per_owner(api_bank: TokenBank) -> None:
    seen: list[tuple[str, str | None]] = []

    def operators_stake(request: Request, action: str, user_id: str | None) -> None:
        """Only the operator stakes (the body sets the reward); owners read and unstake their own."""
        seen.append((action, user_id))
        caller = request.headers.get("x-user")
        if action == Action.STAKE and caller != "operator":
            raise HTTPException(403, "operators only")
        if action in (Action.STAKE_READ, Action.UNSTAKE) and caller not in (user_id, "operator"):
            raise HTTPException(403, "not your stake")

    await api_bank.transfer("treasury", "alice", 10)
    closed = FastAPI()
    closed.state.token_bank = api_bank
    closed.include_router(create_router(authorize=operators_stake))
    async with _client(closed) as client:
        assert (await client.post("/stakes", json={})).status_code == 404

    app = FastAPI()
    app.state.token_bank = api_bank
    app.include_router(create_router(authorize=operators_stake, staking=True))
    install_error_handlers(app)
    until = "2999-01-01T00:00:00Z"
    body = {"user_id": "alice", "amount": "5.00", "until": until, "reward": "1000.00"}
    async with _client(app) as client:
        refused = await client.post("/stakes", json=body, headers={"x-user": "alice"})
        assert refused.status_code == 403 and await api_bank.get_balance("alice") == 10
        stake = (await client.post("/stakes", json=body, headers={"x-user": "operator"})).json()
        assert (await client.get(f"/stakes/{stake['id']}", headers={"x-user": "bob"})).status_code == 403
        assert (await client.get(f"/stakes/{stake['id']}", headers={"x-user": "alice"})).status_code == 200
        early = await client.post(f"/stakes/{stake['id']}/unstake", headers={"x-user": "alice"})
        assert_error(early, 409, "stake_locked", "stake_id")
    assert (Action.STAKE.value, "alice") in seen and (Action.UNSTAKE.value, "alice") in seen
