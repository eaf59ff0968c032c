"""Bad input over HTTP: a 4xx with exactly ``{code, message}``, and nothing changed in the ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.backends import by_name, params
from tests.conftest import module_backend
from tests.integrations.conftest import API_KEY, AUTH, BASE_URL, assert_error, fund
from tests.support import open_bank, snapshot
from tokenbank import TokenBank
from tokenbank.integrations.fastapi import create_app

T = {"from_user_id": "alice", "to_user_id": "bob", "amount": "1"}
HOLD = {"from_user_id": "alice", "to_user_id": "bob", "amount": "1", "expires_in_seconds": 60}
LONG_ID = "x" * 129

# (id, method, path, json body or raw bytes, extra headers, status, code)
CASES: list[tuple[str, str, str, Any, dict[str, str], int, str]] = [
    ("float-amount", "POST", "/transfers", {**T, "amount": 1.5}, {}, 422, "invalid_amount"),
    ("int-amount", "POST", "/transfers", {**T, "amount": 1}, {}, 422, "invalid_amount"),
    ("huge-json-number", "POST", "/transfers", {**T, "amount": 10**40}, {}, 422, "invalid_amount"),
    ("huge-string", "POST", "/transfers", {**T, "amount": "1" + "0" * 40}, {}, 422, "invalid_amount"),
    ("beyond-2**63", "POST", "/transfers", {**T, "amount": "99999999999999999999"}, {}, 422, "invalid_amount"),
    ("exponent", "POST", "/transfers", {**T, "amount": "1e3"}, {}, 422, "invalid_amount"),
    ("negative", "POST", "/transfers", {**T, "amount": "-5"}, {}, 422, "invalid_amount"),
    ("zero", "POST", "/transfers", {**T, "amount": "0.00"}, {}, 422, "invalid_amount"),
    ("nan", "POST", "/transfers", {**T, "amount": "NaN"}, {}, 422, "invalid_amount"),
    ("too-precise", "POST", "/transfers", {**T, "amount": "0.001"}, {}, 422, "invalid_amount"),
    ("amount-null", "POST", "/transfers", {**T, "amount": None}, {}, 422, "invalid_amount"),
    ("overlong-id", "POST", "/transfers", {**T, "to_user_id": LONG_ID}, {}, 422, "invalid_account"),
    ("empty-id", "POST", "/transfers", {**T, "to_user_id": ""}, {}, 422, "invalid_account"),
    ("control-char-id", "POST", "/transfers", {**T, "to_user_id": "b\x00b"}, {}, 422, "invalid_account"),
    ("number-id", "POST", "/transfers", {**T, "to_user_id": 7}, {}, 422, "invalid_account"),
    ("self-transfer", "POST", "/transfers", {**T, "to_user_id": "alice"}, {}, 422, "invalid_account"),
    (
        "missing-amount",
        "POST",
        "/transfers",
        {"from_user_id": "alice", "to_user_id": "bob"},
        {},
        422,
        "invalid_request",
    ),
    ("missing-sender", "POST", "/transfers", {"to_user_id": "bob", "amount": "1"}, {}, 422, "invalid_request"),
    ("unknown-field", "POST", "/transfers", {**T, "amuont": "1"}, {}, 422, "invalid_request"),
    ("not-json", "POST", "/transfers", b"{not json", {"content-type": "application/json"}, 422, "invalid_request"),
    ("json-array", "POST", "/transfers", [T], {}, 422, "invalid_request"),
    ("no-body", "POST", "/transfers", None, {}, 422, "invalid_request"),
    ("metadata-list", "POST", "/transfers", {**T, "metadata": [1]}, {}, 422, "invalid_request"),
    ("metadata-5kib", "POST", "/transfers", {**T, "metadata": {"x": "y" * 5000}}, {}, 422, "invalid_request"),
    ("reason-too-long", "POST", "/transfers", {**T, "reason": "r" * 501}, {}, 422, "invalid_request"),
    ("reason-nul", "POST", "/transfers", {**T, "reason": "a\x00b"}, {}, 422, "invalid_request"),
    ("key-too-long", "POST", "/transfers", T, {"Idempotency-Key": "k" * 129}, 422, "invalid_request"),
    ("key-empty", "POST", "/transfers", T, {"Idempotency-Key": ""}, 422, "invalid_request"),
    ("insufficient", "POST", "/transfers", {**T, "amount": "1000"}, {}, 409, "insufficient_balance"),
    ("batch-empty", "POST", "/transfers/batch", {"transfers": []}, {}, 422, "invalid_request"),
    ("batch-float", "POST", "/transfers/batch", {"transfers": [{**T, "amount": 1.0}]}, {}, 422, "invalid_amount"),
    ("batch-atomic-str", "POST", "/transfers/batch", {"transfers": [T], "atomic": "yes"}, {}, 422, "invalid_request"),
    ("mint-float", "POST", "/mint", {"to_user_id": "bob", "amount": 2.0}, {}, 422, "invalid_amount"),
    ("mint-wrong-field", "POST", "/mint", {"user_id": "bob", "amount": "2"}, {}, 422, "invalid_request"),
    ("burn-overlong-id", "POST", "/burn", {"user_id": LONG_ID, "amount": "2"}, {}, 422, "invalid_account"),
    ("burn-too-much", "POST", "/burn", {"user_id": "alice", "amount": "11"}, {}, 409, "insufficient_balance"),
    ("hold-expiry-zero", "POST", "/holds", {**HOLD, "expires_in_seconds": 0}, {}, 422, "invalid_request"),
    ("hold-expiry-float", "POST", "/holds", {**HOLD, "expires_in_seconds": 1.5}, {}, 422, "invalid_request"),
    ("hold-expiry-string", "POST", "/holds", {**HOLD, "expires_in_seconds": "60"}, {}, 422, "invalid_request"),
    ("hold-expiry-years", "POST", "/holds", {**HOLD, "expires_in_seconds": 10**9}, {}, 422, "invalid_request"),
    ("hold-too-much", "POST", "/holds", {**HOLD, "amount": "11"}, {}, 409, "insufficient_balance"),
    ("capture-float", "POST", "/holds/h1/capture", {"amount": 1.0}, {}, 422, "invalid_amount"),
    ("void-unknown", "POST", "/holds/no-such-hold/void", None, {}, 404, "hold_not_found"),
    ("reverse-no-reason", "POST", "/transactions/x/reverse", {}, {}, 422, "invalid_request"),
    ("reverse-empty-reason", "POST", "/transactions/x/reverse", {"reason": ""}, {}, 422, "invalid_request"),
    ("tx-control-char", "GET", "/transactions/a%00b", None, {}, 422, "invalid_request"),
    ("tx-overlong", "GET", "/transactions/" + "x" * 129, None, {}, 422, "invalid_request"),
    ("balance-overlong-id", "GET", f"/accounts/{LONG_ID}/balance", None, {}, 422, "invalid_account"),
    ("balance-control-char", "GET", "/accounts/a%01/balance", None, {}, 422, "invalid_account"),
    ("history-limit-0", "GET", "/accounts/alice/transactions?limit=0", None, {}, 422, "invalid_request"),
    ("history-limit-big", "GET", "/accounts/alice/transactions?limit=5000", None, {}, 422, "invalid_request"),
    ("history-bad-cursor", "GET", "/accounts/alice/transactions?cursor=zzz", None, {}, 422, "invalid_request"),
    ("history-bad-type", "GET", "/accounts/alice/transactions?type=gift", None, {}, 422, "invalid_request"),
    ("leaderboard-negative", "GET", "/leaderboard?offset=-1", None, {}, 422, "invalid_request"),
    ("leaderboard-limit-text", "GET", "/leaderboard?limit=ten", None, {}, 422, "invalid_request"),
    ("unknown-path", "POST", "/transfer", T, {}, 404, "not_found"),
    ("wrong-method", "DELETE", "/transfers", None, {}, 405, "method_not_allowed"),
]


# The request field each case blames (``param``); None: no single field is at fault.
PARAMS: dict[str, str | None] = {
    **{name: "amount" for name, *_ in CASES[:11]},
    **dict.fromkeys(("overlong-id", "empty-id", "control-char-id", "number-id", "self-transfer"), "to_user_id"),
    "missing-amount": "amount",
    "missing-sender": "from_user_id",
    "unknown-field": "amuont",
    "not-json": None,
    "json-array": None,
    "no-body": None,
    "metadata-list": "metadata",
    "metadata-5kib": "metadata",
    "reason-too-long": "reason",
    "reason-nul": "reason",
    "key-too-long": "idempotency_key",
    "key-empty": "idempotency_key",
    "insufficient": "amount",
    "batch-empty": "transfers",
    "batch-float": "transfers.0.amount",
    "batch-atomic-str": "atomic",
    "mint-float": "amount",
    "mint-wrong-field": "to_user_id",
    "burn-overlong-id": "user_id",
    "burn-too-much": "amount",
    **{f"hold-expiry-{kind}": "expires_in_seconds" for kind in ("zero", "float", "string", "years")},
    "hold-too-much": "amount",
    "capture-float": "amount",
    "void-unknown": "hold_id",
    "reverse-no-reason": "reason",
    "reverse-empty-reason": "reason",
    "tx-control-char": "transaction_id",
    "tx-overlong": "transaction_id",
    "balance-overlong-id": "user_id",
    "balance-control-char": "user_id",
    "history-limit-0": "limit",
    "history-limit-big": "limit",
    "history-bad-cursor": "cursor",
    "history-bad-type": "type",
    "leaderboard-negative": "offset",
    "leaderboard-limit-text": "limit",
    "unknown-path": None,
    "wrong-method": None,
}


def test_every_case_names_its_param() -> None:
    assert sorted(PARAMS) == sorted(name for name, *_ in CASES)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=params(by_name("sqlite", "postgres", "redis")))
async def refusing_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, TokenBank]]:
    """One app and bank per backend for every bad request below, alice funded with 10.00 once: each request must
    change nothing, which the test checks, so they can share it (an app per request made this module the
    slowest of the suite)."""
    with module_backend(request, tmp_path_factory) as backend:
        async with open_bank(backend, initial_supply=1000) as bank:
            app = create_app(bank=bank, api_key=API_KEY)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=AUTH) as client:
                await fund(client, "alice", "10")
                yield client, bank


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "code", "param"),
    [(*c[1:], PARAMS.get(c[0])) for c in CASES],
    ids=[c[0] for c in CASES],
)
async def test_bad_request_is_refused_without_change(
    refusing_api: tuple[httpx.AsyncClient, TokenBank],
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    code: str,
    param: str | None,
) -> None:
    client, bank = refusing_api
    before = await snapshot(bank)
    assert before.balances["alice"] == 10  # what the cases' amounts are chosen against
    if isinstance(body, bytes):
        response = await client.request(method, path, content=body, headers=headers)
    else:
        response = await client.request(method, path, json=body, headers=headers)
    assert_error(response, status, code, param)
    assert await snapshot(bank) == before


async def test_insufficient_balance_says_available_and_requested(
    client: httpx.AsyncClient, api_bank: TokenBank
) -> None:
    await fund(client, "alice", "10")
    await client.post("/holds", json={**HOLD, "amount": "2.50"})
    response = await client.post("/transfers", json={**T, "amount": "30"})
    assert_error(response, 409, "insufficient_balance", "amount")
    assert response.json()["message"] == "insufficient balance: 'alice' has 7.50 available, 30.00 requested"


async def test_batch_items_name_their_param(client: httpx.AsyncClient, api_bank: TokenBank) -> None:
    await fund(client, "alice", "10")
    items = [{**T, "amount": "4"}, {**T, "amount": "7"}, {**T, "to_user_id": "alice"}]
    response = await client.post("/transfers/batch", json={"transfers": items})
    assert response.status_code == 200, response.text
    errors = [r["error"] for r in response.json()["results"]]
    assert errors[0] is None
    assert errors[1] == {
        "code": "insufficient_balance",
        "message": "insufficient balance: 'alice' has 6.00 available, 7.00 requested",
        "param": "amount",
    }
    assert (errors[2]["code"], errors[2]["param"]) == ("invalid_account", "to_user_id")
    before = await snapshot(api_bank)
    aborted = await client.post("/transfers/batch", json={"transfers": items[:2], "atomic": True})
    assert aborted.status_code == 409, aborted.text
    body = aborted.json()
    assert (body["code"], body["param"]) == ("batch_aborted", "transfers.1.amount")
    assert "'alice' has 6.00 available, 7.00 requested" in body["message"]
    assert [r["error"]["param"] for r in body["results"]] == [None, "amount"]
    assert await snapshot(api_bank) == before


async def test_an_expired_hold_names_the_hold(client: httpx.AsyncClient, api_bank: TokenBank) -> None:
    await fund(client, "alice", "10")
    hold = (await client.post("/holds", json=HOLD)).json()
    await client.post(f"/holds/{hold['id']}/void")
    assert_error(await client.post(f"/holds/{hold['id']}/capture"), 409, "hold_state", "hold_id")
    conflict = await client.post("/transfers", json=T, headers={"Idempotency-Key": "k"})
    assert conflict.status_code == 201
    other = await client.post("/transfers", json={**T, "amount": "2"}, headers={"Idempotency-Key": "k"})
    assert_error(other, 409, "idempotency_conflict", "idempotency_key")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdDp0ZXN0"}, {"Authorization": "Bearer"}],
    ids=["missing", "wrong-key", "basic-scheme", "empty-bearer"],
)
async def test_writes_need_the_api_key(client: httpx.AsyncClient, api_bank: TokenBank, headers: dict[str, str]) -> None:
    await fund(client, "alice", "10")
    before = await snapshot(api_bank)
    client.headers.pop("Authorization")
    response = await client.post("/transfers", json=T, headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/accounts/alice/balance")).status_code == 200  # reads stay open
    assert await snapshot(api_bank) == before
    client.headers.update(AUTH)
