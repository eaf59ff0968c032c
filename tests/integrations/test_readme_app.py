"""The README's FastAPI example, end to end on every backend: the library router and an app route share a bank."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, FastAPI

from tests.backends import BoundBackend
from tokenbank import TokenBank
from tokenbank.integrations.fastapi import create_router, get_token_bank, install_error_handlers, token_bank_lifespan


def readme_app(settings: object) -> FastAPI:
    app = FastAPI(lifespan=token_bank_lifespan(settings))  # type: ignore[arg-type]
    app.include_router(create_router(prefix="/gems"))
    install_error_handlers(app)

    @app.post("/orders/{order_id}/pay")
    async def pay(order_id: str, user: str, bank: Annotated[TokenBank, Depends(get_token_bank)]) -> dict[str, str]:
        tx = await bank.transfer(user, "shop", "9.99", idempotency_key=f"order-{order_id}")
        return {"transaction_id": tx.id}

    return app


async def test_the_readme_app_works_end_to_end(api_backend: BoundBackend) -> None:
    app = readme_app(api_backend.settings(initial_supply=1000, hold_sweep_interval=0))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            funded = await client.post("/gems/transfers", json={"from_user_id": "treasury", "to_user_id": "alice",
                                                                  "amount": "20"})  # fmt: skip
            assert funded.status_code == 201, funded.text

            first = await client.post("/orders/42/pay", params={"user": "alice"})
            again = await client.post("/orders/42/pay", params={"user": "alice"})
            assert first.status_code == again.status_code == 200
            assert first.json() == again.json()  # the idempotency key made the retry a replay

            broke = await client.post("/orders/43/pay", params={"user": "nobody"})
            assert broke.status_code == 409
            assert broke.json()["code"] == "insufficient_balance"

            balance = await client.get("/gems/accounts/alice/balance")
            assert balance.json() == {"user_id": "alice", "balance": "10.01"}
            shop = (await client.get("/gems/accounts/shop/balance")).json()["balance"]
            assert shop == "9.99"
            board = (await client.get("/gems/leaderboard")).json()
            assert [row["user_id"] for row in board] == ["alice", "shop"]
