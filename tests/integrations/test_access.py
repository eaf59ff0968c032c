"""Access control stays the application's: router dependencies, the authorize hook, and ``serve``'s API key."""

from __future__ import annotations

import logging
from decimal import Decimal

import httpx
import pytest
import typer
import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from typer.testing import CliRunner

from tests.integrations.conftest import API_KEY, assert_error
from tests.support import snapshot
from tokenbank import TokenBank
from tokenbank.cli import serve as serve_module
from tokenbank.cli.serve import is_loopback, run_server, serve
from tokenbank.errors import ConfigurationError
from tokenbank.integrations.fastapi import Action, create_app, create_router, install_error_handlers

# A batch is also authorized item by item as ``transfer`` actions, so this guard covers batches too.
MOVES = {Action.TRANSFER, Action.BURN, Action.HOLD_CREATE, Action.HOLD_VOID}


def current_user(x_user: str = Header()) -> str:
    """The app's own authentication (here: trust a header); a router dependency."""
    return x_user


def own_tokens_only(request: Request, action: str, user_id: str | None) -> None:
    """Users may move only their own tokens: the account the action debits must be theirs."""
    if action in MOVES and user_id != request.headers["x-user"]:
        raise HTTPException(403, "you can only move your own tokens")
    if action == Action.MINT:
        raise HTTPException(403, detail={"code": "admins_only", "message": "only admins mint"})


@pytest.fixture
def guarded_app(api_bank: TokenBank) -> FastAPI:
    app = FastAPI()
    app.state.token_bank = api_bank
    app.include_router(create_router(dependencies=[Depends(current_user)], authorize=own_tokens_only))
    install_error_handlers(app)
    return app


async def test_guard_lets_users_move_only_their_own_tokens(guarded_app: FastAPI, api_bank: TokenBank) -> None:
    await api_bank.transfer("treasury", "alice", "10")
    transport = httpx.ASGITransport(app=guarded_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        body = {"from_user_id": "alice", "to_user_id": "bob", "amount": "3"}
        assert (await client.post("/transfers", json=body, headers={"X-User": "alice"})).status_code == 201

        before = await snapshot(api_bank)
        stolen = await client.post("/transfers", json=body, headers={"X-User": "bob"})
        assert_error(stolen, 403, "forbidden")
        assert stolen.json()["message"] == "you can only move your own tokens"
        batch = {"transfers": [{"from_user_id": "bob", "to_user_id": "carol", "amount": "1"}, body]}
        assert_error(await client.post("/transfers/batch", json=batch, headers={"X-User": "bob"}), 403, "forbidden")
        mint = await client.post("/mint", json={"to_user_id": "bob", "amount": "1"}, headers={"X-User": "bob"})
        assert_error(mint, 403, "admins_only")
        assert_error(await client.get("/accounts/bob/balance"), 422, "invalid_request")  # the dependency's header
        assert await snapshot(api_bank) == before
        assert (await client.get("/accounts/bob/balance", headers={"X-User": "carol"})).json()["balance"] == "3.00"


async def test_async_authorize_sees_the_payer_of_a_hold(api_bank: TokenBank) -> None:
    seen: list[tuple[str, str | None]] = []

    async def record(request: Request, action: str, user_id: str | None) -> None:
        seen.append((action, user_id))
        if action == "hold.void":
            raise HTTPException(403, "the payee may not void")

    app = FastAPI()
    app.state.token_bank = api_bank
    app.include_router(create_router(authorize=record, prefix="/v1"))
    install_error_handlers(app)
    await api_bank.transfer("treasury", "alice", "10")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        hold = await client.post(
            "/v1/holds", json={"from_user_id": "alice", "to_user_id": "shop", "amount": "4", "expires_in_seconds": 60}
        )
        assert hold.status_code == 201
        assert_error(await client.post(f"/v1/holds/{hold.json()['id']}/void"), 403, "forbidden")
        assert (await client.get("/v1/leaderboard")).status_code == 200
    assert seen == [("hold.create", "alice"), ("hold.void", "alice"), ("leaderboard.read", None)]
    assert await api_bank.get_held_balance("alice") == Decimal(4)


# serve -----------------------------------------------------------------------------------------------------
@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("TOKENBANK_API_KEY", raising=False)
    return monkeypatch


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[uvicorn.Config]:
    """Record what uvicorn would serve instead of serving it."""
    configs: list[uvicorn.Config] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: configs.append(self.config))
    return configs


@pytest.mark.parametrize(
    ("host", "insecure_local"),
    [("0.0.0.0", False), ("0.0.0.0", True), ("192.168.1.10", True), ("127.0.0.1", False), ("::", True)],
)
def test_serve_refuses_without_key(
    no_key: pytest.MonkeyPatch,
    started: list[uvicorn.Config],
    capsys: pytest.CaptureFixture[str],
    host: str,
    insecure_local: bool,
) -> None:
    with pytest.raises(typer.Exit) as exit_info:
        run_server(host, 8000, insecure_local)
    assert exit_info.value.exit_code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TOKENBANK_API_KEY" in err and "refusing to start" in err
    assert not started


def test_serve_command_exits_2_with_one_message(no_key: pytest.MonkeyPatch, started: list[uvicorn.Config]) -> None:
    cli = typer.Typer()
    cli.callback()(lambda: None)
    cli.command()(serve)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "8080"])
    assert result.exit_code == 2, result.output
    assert "TOKENBANK_API_KEY is not set" in result.output
    assert not started


def test_serve_insecure_local_on_loopback(
    no_key: pytest.MonkeyPatch, started: list[uvicorn.Config], tmp_path: object
) -> None:
    cli = typer.Typer()
    cli.callback()(lambda: None)
    cli.command()(serve)
    no_key.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/serve.db")
    result = CliRunner().invoke(cli, ["serve", "--host", "127.0.0.1", "--port", "8081", "--insecure-local"])
    assert result.exit_code == 0, result.output
    [config] = started
    assert (config.host, config.port) == ("127.0.0.1", 8081)


async def test_serve_with_key_protects_writes_and_never_logs_it(
    monkeypatch: pytest.MonkeyPatch,
    started: list[uvicorn.Config],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    api_bank: TokenBank,
) -> None:
    monkeypatch.setenv("TOKENBANK_API_KEY", API_KEY)
    caplog.set_level(logging.DEBUG)
    run_server("0.0.0.0", 8000, False, settings=api_bank.settings, log_level="warning")
    [config] = started
    assert config.host == "0.0.0.0"
    app = config.app
    assert isinstance(app, FastAPI)
    app.state.token_bank = api_bank  # what the lifespan would do
    await api_bank.transfer("treasury", "alice", "5")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        body = {"from_user_id": "alice", "to_user_id": "bob", "amount": "1"}
        assert_error(await client.post("/transfers", json=body), 401, "unauthorized")
        ok = await client.post("/transfers", json=body, headers={"Authorization": f"Bearer {API_KEY}"})
        assert ok.status_code == 201
    captured = capsys.readouterr()
    assert API_KEY not in caplog.text + captured.out + captured.err


def test_create_app_needs_a_key(no_key: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="TOKENBANK_API_KEY"):
        create_app()
    with pytest.raises(ConfigurationError, match="blank"):
        create_app(api_key="  ")
    assert create_app(allow_unauthenticated=True).title == "tokenbank"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("example.com", False), ("10.0.0.1", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert serve_module.EXIT_REFUSED == 2
