"""A tiny Flask app using tokenbank: ``flask --app examples.flask_app run``."""

import hmac
import os
from typing import Any

from flask import Flask, request

from tokenbank import TokenBankError
from tokenbank.integrations.flask import TokenBankExtension, get_bank


def create_app(tokenbank: dict[str, Any] | None = None, transfer_token: str | None = None) -> Flask:
    app = Flask(__name__)
    app.config["TOKENBANK"] = tokenbank or {
        "database_url": os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///tokenbank.db"),
        "symbol": "GEMS",
        "initial_supply": 1_000_000,
    }
    app.config["TRANSFER_TOKEN"] = transfer_token or os.environ.get("TRANSFER_TOKEN", "change-me")
    TokenBankExtension(app)

    @app.errorhandler(TokenBankError)
    def refused(exc: TokenBankError) -> tuple[dict[str, str], int]:
        return {"code": exc.code, "message": str(exc)}, exc.http_status

    @app.get("/balance/<user_id>")
    def balance(user_id: str) -> dict[str, str]:
        return {"user_id": user_id, "balance": str(get_bank().get_balance(user_id))}

    @app.post("/transfer")
    def transfer() -> tuple[dict[str, str], int]:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {app.config['TRANSFER_TOKEN']}".encode()):
            return {"code": "unauthorized", "message": "a valid bearer token is required"}, 401
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not {"from", "to", "amount"} <= body.keys():
            return {"code": "invalid_request", "message": "JSON body {from, to, amount}"}, 422
        tx = get_bank().transfer(body["from"], body["to"], str(body["amount"]), idempotency_key=body.get("key"))
        return {"id": tx.id, "amount": str(tx.amount)}, 201

    return app
