"""Account controls over HTTP: read an account, freeze, unfreeze, close and limit it; the refusals they cause as
their documented statuses (423 frozen, 409 closed or over a limit); every route behind ``authorize``."""

from __future__ import annotations

from decimal import Decimal

import httpx
from fastapi import FastAPI, HTTPException, Request

from tests.integrations.conftest import AUTH, assert_error, fund
from tests.support import snapshot
from tokenbank import TokenBank
from tokenbank.integrations.fastapi import Action, create_router, install_error_handlers

T = {"from_user_id": "alice", "to_user_id": "bob", "amount": "1"}
# (method, path, body, status, code, param): bad control requests, refused with nothing changed.
BAD = [
    ("POST", "/accounts/alice/freeze", {"debits": False, "credits": False, "reason": "x"}, 422, "invalid_request",
     "debits"),
    ("POST", "/accounts/alice/freeze", {}, 422, "invalid_request", "reason"),
    ("POST", "/accounts/alice/freeze", {"reason": ""}, 422, "invalid_request", "reason"),
    ("POST", "/accounts/alice/freeze", {"reason": "x", "until": "2020-01-01T00:00:00Z"}, 422, "invalid_request",
     "until"),
    ("POST", "/accounts/alice/freeze", {"reason": "x", "until": "2999-01-01T00:00:00"}, 422, "invalid_request",
     "until"),
    ("POST", "/accounts/alice/freeze", {"reason": "x", "until": "9999-12-31T23:00:00-05:00"}, 422,
     "invalid_request", "until"),
    ("POST", "/accounts/alice/freeze", {"reason": "x", "debits": "yes"}, 422, "invalid_request", "debits"),
    ("PUT", "/accounts/alice/limits", {"max_balance": "0"}, 422, "invalid_amount", "max_balance"),
    ("PUT", "/accounts/alice/limits", {"max_balance": 5}, 422, "invalid_amount", "max_balance"),
    ("PUT", "/accounts/alice/limits", {"overdraft": "-5"}, 422, "invalid_amount", "overdraft"),
    ("PUT", "/accounts/alice/limits", {"overdraft": "0.001"}, 422, "invalid_amount", "overdraft"),
    ("PUT", "/accounts/alice/limits", {"overdraft": "NaN"}, 422, "invalid_amount", "overdraft"),
    ("PUT", "/accounts/alice/limits", {"spend_per_window": {"amount": "5", "seconds": 0}}, 422, "invalid_request",
     "spend_per_window.seconds"),
    ("PUT", "/accounts/alice/limits", {"spend_per_window": {"amount": "0.001", "seconds": 60}}, 422,
     "invalid_amount", "spend_per_window.amount"),
    ("PUT", "/accounts/alice/limits", {"spend_per_window": [5, 60]}, 422, "invalid_request", "spend_per_window"),
    ("GET", "/accounts/a%01", None, 422, "invalid_account", "user_id"),
    ("POST", "/accounts/" + "x" * 129 + "/close", None, 422, "invalid_account", "user_id"),
]  # fmt: skip


async def test_freeze_and_unfreeze(client: httpx.AsyncClient, api_bank: TokenBank) -> None:
    await fund(client, "alice", "100")
    fresh = await client.get("/accounts/alice")
    assert fresh.json() == {
        "user_id": "alice", "balance": "100.00", "held": "0.00", "frozen": None, "closed": False,
        "max_balance": None, "spend_limit": None, "spent_in_window": "0.00", "overdraft": None,
    }  # fmt: skip
    frozen = await client.post("/accounts/alice/freeze", json={"reason": "chargeback review"})
    assert frozen.status_code == 200, frozen.text
    assert frozen.json()["frozen"] == {"debits": True, "credits": False, "reason": "chargeback review", "until": None}
    before = await snapshot(api_bank)
    assert_error(await client.post("/transfers", json=T), 423, "account_frozen", "from_user_id")
    assert_error(await client.post("/burn", json={"user_id": "alice", "amount": "1"}), 423, "account_frozen")
    assert await snapshot(api_bank) == before
    assert (
        await client.post("/transfers", json={**T, "from_user_id": "bob", "to_user_id": "alice"})
    ).status_code == 409

    both = {"debits": True, "credits": True, "reason": "sanctions check", "until": "2999-01-01T00:00:00+01:00"}
    frozen = await client.post("/accounts/alice/freeze", json=both)
    assert frozen.json()["frozen"] == {**both, "until": "2998-12-31T23:00:00Z"}  # the same moment, in UTC
    mint = await client.post("/mint", json={"to_user_id": "alice", "amount": "1"})
    assert_error(mint, 423, "account_frozen", "to_user_id")

    assert (await client.post("/accounts/alice/unfreeze")).json()["frozen"] is None
    assert (await client.post("/transfers", json=T)).status_code == 201
    actions = [e.action for e in await api_bank.get_audit_log(limit=5) if e.action.startswith("account.")]
    assert actions == ["account.unfreeze", "account.freeze", "account.freeze"]


async def test_limits_and_close(client: httpx.AsyncClient, api_bank: TokenBank) -> None:
    await fund(client, "alice", "100")
    limits = {"max_balance": "150", "spend_per_window": {"amount": "10", "seconds": 3600}}
    limited = await client.put("/accounts/alice/limits", json=limits)
    assert limited.status_code == 200, limited.text
    body = limited.json()
    assert (body["max_balance"], body["spend_limit"]) == ("150.00", {"amount": "10.00", "seconds": 3600})
    assert (await client.post("/transfers", json={**T, "amount": "10"})).status_code == 201
    before = await snapshot(api_bank)
    over = await client.post("/transfers", json={**T, "amount": "0.01"})
    assert_error(over, 409, "limit_exceeded", "amount")
    assert "spend_per_window" in over.json()["message"]
    assert_error(await client.post("/mint", json={"to_user_id": "alice", "amount": "60.01"}), 409, "limit_exceeded")
    assert await snapshot(api_bank) == before
    assert (await client.get("/accounts/alice")).json()["spent_in_window"] == "10.00"
    cleared = (await client.put("/accounts/alice/limits", json={})).json()
    assert (cleared["max_balance"], cleared["spend_limit"]) == (None, None)

    assert_error(await client.post("/accounts/alice/close"), 409, "transaction_state", "user_id")  # holds funds
    closed = await client.post("/accounts/carol/close")
    assert closed.status_code == 200 and closed.json()["closed"] is True
    assert_error(await client.post("/transfers", json={**T, "to_user_id": "carol"}), 409, "account_closed")
    assert_error(await client.post("/accounts/carol/freeze", json={"reason": "x"}), 409, "account_closed")
    assert_error(await client.put("/accounts/carol/limits", json={}), 409, "account_closed", "user_id")

    overdrawn = await client.put("/accounts/erin/limits", json={"overdraft": "20"})
    assert overdrawn.status_code == 200 and overdrawn.json()["overdraft"] == "20.00"
    assert (
        await client.post("/transfers", json={"from_user_id": "erin", "to_user_id": "dave", "amount": "20"})
    ).status_code == 201
    assert (await client.get("/accounts/erin")).json()["balance"] == "-20.00"
    before = await snapshot(api_bank)
    below = await client.post("/transfers", json={"from_user_id": "erin", "to_user_id": "dave", "amount": "0.01"})
    assert_error(below, 409, "insufficient_balance", "amount")
    lowered = await client.put("/accounts/erin/limits", json={"overdraft": "19.99"})
    assert_error(lowered, 409, "transaction_state", "overdraft")
    assert await snapshot(api_bank) == before

    client.headers.pop("Authorization")  # create_app's key guards every change, the PUT included
    try:
        assert_error(await client.put("/accounts/alice/limits", json=limits), 401, "unauthorized")
        assert_error(await client.post("/accounts/alice/freeze", json={"reason": "x"}), 401, "unauthorized")
        assert (await client.get("/accounts/alice")).status_code == 200
    finally:
        client.headers.update(AUTH)


async def test_bad_control_requests_change_nothing(client: httpx.AsyncClient, api_bank: TokenBank) -> None:
    await fund(client, "alice", "10")
    before = await snapshot(api_bank)
    for method, path, body, status, code, param in BAD:
        assert_error(await client.request(method, path, json=body), status, code, param)
    assert await snapshot(api_bank) == before
    assert (await client.get("/accounts/alice")).json()["frozen"] is None


async def test_authorize_guards_every_account_route(api_bank: TokenBank) -> None:
    seen: list[tuple[str, str | None]] = []

    def operators_only(request: Request, action: str, user_id: str | None) -> None:
        seen.append((action, user_id))
        if action == Action.ACCOUNT_CONTROL and request.headers.get("x-role") != "operator":
            raise HTTPException(403, "operators only")
        if action == Action.ACCOUNT_READ and user_id == "mallory":
            raise HTTPException(403, "not for mallory")

    app = FastAPI()
    app.state.token_bank = api_bank
    app.include_router(create_router(authorize=operators_only, account_controls=True))
    install_error_handlers(app)
    routes = [
        ("POST", "/accounts/alice/freeze", {"reason": "x"}),
        ("POST", "/accounts/alice/unfreeze", None),
        ("PUT", "/accounts/alice/limits", {"max_balance": "5"}),
        ("POST", "/accounts/alice/close", None),
    ]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        before = await snapshot(api_bank, ("treasury", "alice", "mallory"))
        for method, path, body in routes:
            assert_error(await client.request(method, path, json=body), 403, "forbidden")
        assert_error(await client.get("/accounts/mallory"), 403, "forbidden")
        assert await snapshot(api_bank, ("treasury", "alice", "mallory")) == before
        assert (await client.get("/accounts/alice")).json()["frozen"] is None
        operator = {"X-Role": "operator"}
        for method, path, body in routes:
            response = await client.request(method, path, json=body, headers=operator)
            assert response.status_code == 200, response.text
    assert seen == [
        *(("account.control", "alice") for _ in routes), ("account.read", "mallory"), ("account.read", "alice"),
        *(("account.control", "alice") for _ in routes),
    ]  # fmt: skip
    info = await api_bank.get_account("alice")
    assert info.closed and info.max_balance == Decimal(5)


def test_the_account_routes_are_opt_in() -> None:
    """A hook written before them (users may act on their own account) must not let users unfreeze themselves."""

    def paths(account_controls: bool) -> set[str]:
        router = create_router(allow_anonymous=True, account_controls=account_controls)
        return {getattr(route, "path", "") for route in router.routes}

    controls = {f"/accounts/{{user_id}}{end}" for end in ("", "/freeze", "/unfreeze", "/close", "/limits")}
    assert not controls & paths(account_controls=False)
    assert controls <= paths(account_controls=True)
