"""HTTP is closed by default: a router needs a guard, the hook sees every write and per-account read, bodies are
bounded, replays and aborted batches say so, and the schema's patterns allow exactly what the ledger accepts."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.integrations.conftest import assert_error
from tests.support import snapshot
from tokenbank import TokenBank
from tokenbank.amounts import to_base_units
from tokenbank.errors import ConfigurationError
from tokenbank.integrations.fastapi import MAX_BODY_BYTES, create_router, install_error_handlers
from tokenbank.integrations.fastapi.schemas import CURSOR_PATTERN, amount_pattern
from tokenbank.services.transactions import decode_cursor, encode_cursor

Seen = list[tuple[str, str | None]]


def app_with(bank: TokenBank, **router: object) -> FastAPI:
    app = FastAPI()
    app.state.token_bank = bank
    app.include_router(create_router(**router))  # type: ignore[arg-type]
    install_error_handlers(app)
    return app


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def test_a_router_without_a_guard_is_refused() -> None:
    with pytest.raises(ConfigurationError) as refused:
        create_router(prefix="/gems")
    message = str(refused.value)
    assert "authorize=" in message and "dependencies=" in message and "allow_anonymous=True" in message
    with pytest.raises(ConfigurationError):
        create_router(mutation_dependencies=[Depends(lambda: None)])  # guards the writes only: reads stay open
    create_router(allow_anonymous=True)
    create_router(authorize=lambda request, action, user_id: None)
    create_router(dependencies=[Depends(lambda: None)])


@pytest.mark.parametrize("bad", [{"decimals": 19}, {"decimals": -1}, {"max_body_bytes": 0}])
def test_bad_router_options_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ConfigurationError):
        create_router(allow_anonymous=True, **bad)  # type: ignore[arg-type]


@pytest.fixture
async def recorded(api_bank: TokenBank) -> AsyncIterator[tuple[httpx.AsyncClient, Seen]]:
    """A client of an app whose hook records every call and refuses anything for ``mallory``."""
    seen: Seen = []

    def hook(request: Request, action: str, user_id: str | None) -> None:
        seen.append((action, user_id))
        if user_id == "mallory":
            raise HTTPException(403, "not for mallory")

    await api_bank.transfer("treasury", "alice", "10")
    await api_bank.transfer("treasury", "mallory", "10")
    async with client_of(app_with(api_bank, authorize=hook)) as client:
        yield client, seen


async def test_authorize_sees_every_per_account_read_with_its_user(
    recorded: tuple[httpx.AsyncClient, Seen],
) -> None:
    client, seen = recorded
    for path in ("balance", "transactions", "rank"):
        assert (await client.get(f"/accounts/alice/{path}")).status_code == 200
        assert_error(await client.get(f"/accounts/mallory/{path}"), 403, "forbidden")
    assert_error(await client.get("/accounts/mallory/events"), 403, "forbidden")
    assert seen == [
        ("balance.read", "alice"), ("balance.read", "mallory"), ("history.read", "alice"),
        ("history.read", "mallory"), ("rank.read", "alice"), ("rank.read", "mallory"),
        ("events.subscribe", "mallory"),
    ]  # fmt: skip


async def test_authorize_sees_every_write_and_a_refusal_changes_nothing(
    recorded: tuple[httpx.AsyncClient, Seen], api_bank: TokenBank
) -> None:
    client, seen = recorded
    hold = await client.post(
        "/holds", json={"from_user_id": "alice", "to_user_id": "bob", "amount": "1", "expires_in_seconds": 60}
    )
    tx = await client.post("/transfers", json={"from_user_id": "alice", "to_user_id": "mallory", "amount": "1"})
    assert (hold.status_code, tx.status_code) == (201, 201)
    seen.clear()
    before = await snapshot(api_bank)
    mallory = [
        ("/transfers", {"from_user_id": "mallory", "to_user_id": "bob", "amount": "1"}),
        ("/transfers/batch", {"transfers": [{"from_user_id": "mallory", "to_user_id": "bob", "amount": "1"}]}),
        ("/mint", {"to_user_id": "mallory", "amount": "1"}),
        ("/burn", {"user_id": "mallory", "amount": "1"}),
        ("/holds", {"from_user_id": "mallory", "to_user_id": "bob", "amount": "1", "expires_in_seconds": 60}),
        (f"/transactions/{tx.json()['id']}/reverse", {"reason": "mallory gives it back"}),
    ]
    for path, body in mallory:
        assert_error(await client.post(path, json=body), 403, "forbidden")
    assert await snapshot(api_bank) == before
    assert (await client.post(f"/holds/{hold.json()['id']}/capture")).status_code == 200
    assert seen == [
        ("transfer", "mallory"), ("transfer.batch", None), ("transfer", "mallory"), ("mint", "mallory"),
        ("burn", "mallory"), ("hold.create", "mallory"), ("reverse", "mallory"), ("hold.capture", "alice"),
    ]  # fmt: skip


async def test_a_router_dependency_guards_reads_and_writes(api_bank: TokenBank) -> None:
    def signed_in(x_user: str = Header()) -> str:
        return x_user

    async with client_of(app_with(api_bank, dependencies=[Depends(signed_in)])) as client:
        assert_error(await client.get("/accounts/alice/balance"), 422, "invalid_request")
        body = {"from_user_id": "treasury", "to_user_id": "alice", "amount": "1"}
        assert_error(await client.post("/transfers", json=body), 422, "invalid_request")
        assert (await client.get("/accounts/alice/balance", headers={"X-User": "a"})).status_code == 200


async def test_bodies_over_64_kib_are_413(api_bank: TokenBank) -> None:
    async with client_of(app_with(api_bank, allow_anonymous=True)) as client:
        before = await snapshot(api_bank)
        big = {"from_user_id": "treasury", "to_user_id": "bob", "amount": "1", "reason": "r" * MAX_BODY_BYTES}
        assert_error(await client.post("/transfers", json=big), 413, "request_too_large")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams in
            yield b'{"from_user_id": "treasury", "to_user_id": "bob", "amount": "1", "reason": "'
            for _ in range(80):
                yield b"r" * 1024
            yield b'"}'

        streamed = await client.post("/transfers", content=chunks(), headers={"Content-Type": "application/json"})
        assert "content-length" not in streamed.request.headers
        assert_error(streamed, 413, "request_too_large")
        assert await snapshot(api_bank) == before

        async def small() -> AsyncIterator[bytes]:
            yield b'{"from_user_id": "treasury", "to_user_id": "bob",'
            yield b' "amount": "1"}'

        ok = await client.post("/transfers", content=small(), headers={"Content-Type": "application/json"})
        assert ok.status_code == 201, ok.text


async def test_a_replayed_write_answers_200_and_says_so(api_bank: TokenBank) -> None:
    async with client_of(app_with(api_bank, allow_anonymous=True)) as client:
        calls = [
            ("/mint", {"to_user_id": "alice", "amount": "5"}),
            ("/burn", {"user_id": "alice", "amount": "1"}),
            ("/holds", {"from_user_id": "alice", "to_user_id": "bob", "amount": "1", "expires_in_seconds": 60}),
        ]
        for n, (path, body) in enumerate(calls):
            key = {"Idempotency-Key": f"key-{n}"}
            first = await client.post(path, json=body, headers=key)
            again = await client.post(path, json=body, headers=key)
            assert first.status_code == 201 and "idempotent-replayed" not in first.headers, path
            assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true", path
            assert again.json() == first.json()
        assert await api_bank.get_balance("alice") == Decimal(3)


async def test_an_aborted_atomic_batch_is_409_with_every_result(api_bank: TokenBank) -> None:
    await api_bank.transfer("treasury", "alice", "5")
    items = [
        {"from_user_id": "alice", "to_user_id": "bob", "amount": "1"},
        {"from_user_id": "alice", "to_user_id": "carol", "amount": "100"},
        {"from_user_id": "alice", "to_user_id": "dave", "amount": "1"},
    ]
    async with client_of(app_with(api_bank, allow_anonymous=True)) as client:
        before = await snapshot(api_bank)
        aborted = await client.post("/transfers/batch", json={"transfers": items, "atomic": True})
        assert aborted.status_code == 409
        body = aborted.json()
        assert body["code"] == "batch_aborted" and "transfer 1" in body["message"]
        assert "insufficient_balance" in body["message"]
        assert [r["ok"] for r in body["results"]] == [False, False, False]
        codes = [r["error"]["code"] for r in body["results"]]
        assert codes == ["batch_aborted", "insufficient_balance", "batch_aborted"]
        assert await snapshot(api_bank) == before
        applied = await client.post("/transfers/batch", json={"transfers": items[:1], "atomic": True})
        assert applied.status_code == 200 and applied.json()["results"][0]["ok"]


@pytest.mark.parametrize("amount", ["0.001", "1e3", "-5", "007", "1,000", " 1", "0.00", 12.5])
async def test_a_bad_amount_is_refused_in_words(api_bank: TokenBank, amount: object) -> None:
    async with client_of(app_with(api_bank, allow_anonymous=True, decimals=2)) as client:
        body = {"from_user_id": "treasury", "to_user_id": "bob", "amount": amount}
        response = await client.post("/transfers", json=body)
    assert_error(response, 422, "invalid_amount")
    message = response.json()["message"]
    assert message == (
        'body.amount: amount must be a positive decimal string like "12.50" with at most 2 fractional digits: '
        "no sign, exponent, leading zeros, separators or spaces, and a JSON string, not a number"
    )
    assert "[0-9]" not in message and "^" not in message


async def test_ids_the_schema_allows_but_cannot_exist_are_404(api_bank: TokenBank) -> None:
    async with client_of(app_with(api_bank, allow_anonymous=True)) as client:
        assert_error(await client.get("/transactions/a\u00a0b"), 404, "transaction_not_found")  # not printable
        assert_error(await client.post("/holds/a\u200bb/void"), 404, "hold_not_found")
        assert_error(await client.get("/transactions/" + "x" * 65), 422, "invalid_request")  # beyond the schema
        assert_error(await client.get("/accounts/alice/transactions", params={"cursor": "0"}), 422, "invalid_request")


def test_the_openapi_schema_states_the_limits(api_bank: TokenBank) -> None:
    schema = app_with(api_bank, allow_anonymous=True, decimals=2).openapi()
    amount = schema["components"]["schemas"]["TransferBody"]["properties"]["amount"]
    assert amount["pattern"] == amount_pattern(2)
    assert "at most 2 fractional digits" in amount["description"]
    history = {p["name"]: p["schema"] for p in schema["paths"]["/accounts/{user_id}/transactions"]["get"]["parameters"]}
    assert history["cursor"]["anyOf"][0]["pattern"] == CURSOR_PATTERN
    lookup = schema["paths"]["/transactions/{transaction_id}"]["get"]["parameters"][0]["schema"]
    assert lookup["maxLength"] == 64
    transfer = schema["paths"]["/transfers"]["post"]["responses"]
    assert {"200", "201", "409", "413", "422"} <= set(transfer)
    assert "Idempotent-Replayed" in transfer["200"]["headers"]
    batch = schema["paths"]["/transfers/batch"]["post"]["responses"]["409"]["content"]["application/json"]
    assert batch["schema"] == {"$ref": "#/components/schemas/BatchAborted"}


@pytest.mark.parametrize("decimals", range(19))
def test_every_amount_the_pattern_allows_is_accepted(decimals: int) -> None:
    pattern = amount_pattern(decimals)

    @settings(max_examples=60, deadline=None)
    @given(st.from_regex(pattern, fullmatch=True))
    def accepted(text: str) -> None:
        assert to_base_units(text, decimals) > 0

    accepted()
    matches = re.compile(pattern).fullmatch
    largest = "8" + "9" * (18 - decimals)
    assert matches(largest + ("." + "9" * decimals if decimals else ""))
    for refused in ("0", "01", "1e3", "-1", "+1", " 1", "1.", ".5", "9" * (19 - decimals), "1." + "0" * (decimals + 1)):
        assert not matches(refused), refused


@settings(max_examples=200, deadline=None)
@given(st.from_regex(CURSOR_PATTERN, fullmatch=True))
def test_every_cursor_the_pattern_allows_is_accepted(cursor: str) -> None:
    assert decode_cursor(cursor) > 0


@pytest.mark.parametrize("seq", [1, 9, 10, 99, 100, 999, 1000, 12345, 10**17, 10**18 - 1])
def test_every_cursor_the_api_hands_out_matches_the_pattern(seq: int) -> None:
    assert re.fullmatch(CURSOR_PATTERN, encode_cursor(seq))
