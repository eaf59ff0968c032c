"""The README's FastAPI example, end to end on every backend: the guarded library router and an app route share
a bank."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, Header, HTTPException, Request

from tests.backends import BoundBackend
from tests.integrations.conftest import assert_error
from tokenbank import Settings, TokenBank
from tokenbank.integrations.fastapi import create_router, get_token_bank, install_error_handlers, token_bank_lifespan


def current_user(x_user: Annotated[str, Header()]) -> str:
    return x_user


def own_tokens_only(request: Request, action: str, user_id: str | None) -> None:
    user = request.headers["x-user"]
    if user == "admin":
        return
    if action in {"mint", "burn", "reverse"} or (user_id is not None and user_id != user):
        raise HTTPException(403, "you can only use your own account")


def readme_app(settings: Settings) -> FastAPI:
    app = FastAPI(lifespan=token_bank_lifespan(settings))
    app.include_router(
        create_router(
            prefix="/gems",
            dependencies=[Depends(current_user)],
            authorize=own_tokens_only,
            decimals=settings.decimals,
        )
    )
    install_error_handlers(app)

    @app.post("/orders/{order_id}/pay")
    async def pay(
        order_id: str,
        user: Annotated[str, Depends(current_user)],
        bank: Annotated[TokenBank, Depends(get_token_bank)],
    ) -> dict[str, str]:
        tx = await bank.transfer(user, "shop", "9.99", idempotency_key=f"order-{order_id}")
        return {"transaction_id": tx.id}

    return app


async def test_the_readme_app_works_end_to_end(api_backend: BoundBackend) -> None:
    app = readme_app(api_backend.settings(initial_supply=1000, hold_sweep_interval=0))
    admin, alice, bob = ({"X-User": name} for name in ("admin", "alice", "bob"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            fund = {"from_user_id": "treasury", "to_user_id": "alice", "amount": "20"}
            assert_error(await client.post("/gems/transfers", json=fund, headers=alice), 403, "forbidden")
            funded = await client.post("/gems/transfers", json=fund, headers=admin)
            assert funded.status_code == 201, funded.text

            first = await client.post("/orders/42/pay", headers=alice)
            again = await client.post("/orders/42/pay", headers=alice)
            assert first.status_code == again.status_code == 200
            assert first.json() == again.json()  # the idempotency key made the retry a replay

            broke = await client.post("/orders/43/pay", headers=bob)
            assert broke.status_code == 409
            assert broke.json()["code"] == "insufficient_balance"

            mint = {"to_user_id": "alice", "amount": "5"}
            assert_error(await client.post("/gems/mint", json=mint), 422, "invalid_request")  # not signed in
            assert_error(await client.post("/gems/mint", json=mint, headers=alice), 403, "forbidden")
            assert_error(await client.get("/gems/accounts/alice/balance", headers=bob), 403, "forbidden")
            balance = await client.get("/gems/accounts/alice/balance", headers=alice)
            assert balance.json() == {"user_id": "alice", "balance": "10.01"}
            shop = (await client.get("/gems/accounts/shop/balance", headers=admin)).json()["balance"]
            assert shop == "9.99"
            board = (await client.get("/gems/leaderboard", headers=bob)).json()
            assert [row["user_id"] for row in board] == ["alice", "shop"]
