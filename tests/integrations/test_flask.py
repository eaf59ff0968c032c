"""The Flask extension through Flask's own test client, with the example app."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from examples.flask_app import create_app
from flask import Flask

from tests.backends import BoundBackend, Scope, by_name, params
from tokenbank import ConfigurationError
from tokenbank.integrations.flask import TokenBankExtension, get_bank

AUTH = {"Authorization": "Bearer secret-token"}


@pytest.fixture(params=params(by_name("sqlite", "postgres")))
def app(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Iterator[Flask]:
    backend: BoundBackend = request.param.bind(Scope(tmp_path))
    app = create_app(backend.settings(initial_supply=1000).model_dump(exclude_defaults=True), "secret-token")
    yield app
    with app.app_context():
        assert get_bank().verify().ok
    app.extensions["tokenbank"].close()


def test_views_through_the_test_client(app: Flask) -> None:
    client = app.test_client()
    assert client.post("/transfer", json={"from": "treasury"}).status_code == 401
    response = client.post("/transfer", json={"from": "treasury", "to": "alice", "amount": "12.5"}, headers=AUTH)
    assert response.status_code == 201, response.text
    created = response.json
    assert created is not None and created == {"id": created["id"], "amount": "12.50"}
    assert client.get("/balance/alice").json == {"user_id": "alice", "balance": "12.50"}
    refused = client.post("/transfer", json={"from": "alice", "to": "bob", "amount": "99"}, headers=AUTH)
    refusal = refused.json
    assert refusal is not None and (refused.status_code, refusal["code"]) == (409, "insufficient_balance")
    assert client.post("/transfer", data="nope", headers=AUTH).status_code == 422


def test_one_bank_per_app_from_any_thread(app: Flask) -> None:
    def task(n: int) -> None:
        with app.app_context():
            get_bank().transfer("treasury", f"worker{n % 4}", "1")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(task, range(40)))
    with app.app_context():
        bank = get_bank()
        assert sum(bank.get_balances([f"worker{n}" for n in range(4)]).values()) == Decimal(40)


def test_extension_bank_and_factory_pattern(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    app = Flask(__name__)
    app.config["TOKENBANK"] = {"database_url": f"sqlite+aiosqlite:///{tmp_path}/tb.db", "initial_supply": 5}
    ext = TokenBankExtension()
    ext.init_app(app)
    with app.app_context():
        assert ext.bank.get_balance("treasury") == Decimal(5)
        ext.close()
    direct = TokenBankExtension(app)
    assert direct.bank.get_balance("treasury") == Decimal(5)
    direct.close()


def test_misconfiguration(clean_env: pytest.MonkeyPatch) -> None:
    app = Flask(__name__)
    app.config["TOKENBANK"] = "sqlite://"
    with pytest.raises(ConfigurationError, match="TOKENBANK"):
        TokenBankExtension(app)
    with Flask(__name__).app_context(), pytest.raises(ConfigurationError, match="not registered"):
        get_bank()
