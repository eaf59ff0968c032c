"""The dashboard in real headless chromium, against a real uvicorn server over SQLite (a file) and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import BACKENDS, Scope
from tests.conftest import require_service
from tests.dashboard.server import LiveServer
from tokenbank import TokenBank
from tokenbank.integrations.fastapi import create_app

API_KEY = "dashboard-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
FEED_DEADLINE = 2.0
"""A transfer must show in the live feed within this many seconds of its HTTP answer."""
WAIT_MS = 10_000


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``tokenbank serve``'s app (create_app with an API key) on a bank with 1,000.00 in the treasury."""
    backend = next(b for b in BACKENDS if b.name == request.param)
    for service in backend.services:
        require_service(service)
    bound = backend.bind(Scope(tmp_path_factory.mktemp(f"dashboard-{request.param}")))
    settings = bound.settings(initial_supply=1000, name="Gems", emoji="💎")
    with LiveServer(settings, lambda bank: create_app(bank=bank, api_key=API_KEY)) as live:
        yield live


@pytest.fixture
def page(browser: Any, server: LiveServer) -> Iterator[Any]:
    """A fresh page whose console errors and uncaught exceptions land in ``page.problems``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    opened.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    opened.problems = problems
    opened.set_default_timeout(WAIT_MS)
    try:
        yield opened
    finally:
        context.close()


def bank_of(server: LiveServer) -> TokenBank:
    assert server.bank is not None
    return server.bank


def shown(amount: Decimal, symbol: str) -> str:
    """How the page writes an amount: grouped thousands, every decimal kept, then the symbol."""
    return f"{amount:,} {symbol}"


def open_dashboard(page: Any, server: LiveServer) -> None:
    """Load the page and wait until its figures are in and the live feed is connected."""
    response = page.goto(server.url + "/dashboard")
    assert response.status == 200
    page.wait_for_function("() => document.getElementById('total-supply').textContent.includes(' ')")
    page.wait_for_selector("#feed-state.live")


def test_the_page_loads_without_console_errors(page: Any, server: LiveServer) -> None:
    bank = bank_of(server)
    server.call(bank.mint("loader", "5"))
    open_dashboard(page, server)
    page.wait_for_selector("#volume-chart svg rect.bar", state="attached")
    page.wait_for_selector("#health tbody tr")
    assert page.text_content("#health-status") == "ok"
    assert page.text_content("#mode") == "sql"
    assert "💎 Gems" in page.text_content("#token-name")
    page.fill("#lookup-id", "loader")
    page.click("#lookup-form button")
    page.wait_for_selector("#history tbody tr")
    assert page.problems == []


def test_a_transfer_over_http_appears_in_the_live_feed(page: Any, server: LiveServer) -> None:
    server.call(bank_of(server).mint("payer", "50"))
    open_dashboard(page, server)
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
        answer = client.post("/transfers", json={"from_user_id": "payer", "to_user_id": "payee", "amount": "7.25"})
        posted = time.monotonic()
    assert answer.status_code == 201, answer.text
    tx = answer.json()
    row = page.wait_for_selector(f'#feed tbody tr[data-id="{tx["id"]}"]', timeout=FEED_DEADLINE * 1000)
    elapsed = time.monotonic() - posted
    assert elapsed < FEED_DEADLINE
    cells = [cell.text_content() for cell in row.query_selector_all("td")]
    assert cells[1:] == ["transfer", "payer", "payee", shown(Decimal("7.25"), bank_of(server).settings.symbol)]
    # Newest first, and without a reload.
    assert page.get_attribute("#feed tbody tr:first-child", "data-id") == tx["id"]
    assert page.problems == []


def test_the_leaderboard_shows_the_top_three(page: Any, server: LiveServer) -> None:
    bank = bank_of(server)
    # Larger than anything the other tests hold, so these three lead whatever ran before.
    for user, amount in (("whale-b", "80000"), ("whale-a", "90000.5"), ("whale-c", "70000")):
        server.call(bank.mint(user, amount))
    open_dashboard(page, server)
    page.wait_for_selector('#leaderboard tbody tr[data-user="whale-c"]')
    rows = page.query_selector_all("#leaderboard tbody tr")[:3]
    top = [[cell.text_content() for cell in row.query_selector_all("td")] for row in rows]
    symbol = bank.settings.symbol
    assert top == [
        ["1", "whale-a", shown(Decimal("90000.50"), symbol)],
        ["2", "whale-b", shown(Decimal("80000.00"), symbol)],
        ["3", "whale-c", shown(Decimal("70000.00"), symbol)],
    ]
    expected = server.call(bank.get_top_holders(3))
    assert [h.user_id for h in expected] == ["whale-a", "whale-b", "whale-c"]


def test_the_supply_figures_match_the_bank(page: Any, server: LiveServer) -> None:
    bank = bank_of(server)
    server.call(bank.mint("supply-check", "1234.56"))
    open_dashboard(page, server)
    symbol = bank.settings.symbol
    assert page.text_content("#total-supply") == shown(server.call(bank.get_total_supply()), symbol)
    assert page.text_content("#circulating-supply") == shown(server.call(bank.get_circulating_supply()), symbol)
    # A mint made while the page is open: the figures follow it without a reload.
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
        assert client.post("/mint", json={"to_user_id": "supply-check", "amount": "1"}).status_code == 201
    total = shown(server.call(bank.get_total_supply()), symbol)
    page.wait_for_function(f"() => document.getElementById('total-supply').textContent === {total!r}")
    assert page.problems == []


def test_account_lookup_pages_through_the_history(page: Any, server: LiveServer) -> None:
    bank = bank_of(server)
    server.call(bank.mint("pager", "100"))
    for i in range(24):  # 25 transactions: one page of 20, then the 5 oldest
        server.call(bank.transfer("pager", f"friend-{i % 3}", "1"))
    history = server.call(bank.transactions.get_transaction_history("pager", limit=100)).items
    assert len(history) == 25
    open_dashboard(page, server)
    page.fill("#lookup-id", "pager")
    page.click("#lookup-form button")
    page.wait_for_selector("#history tbody tr")
    first = [int(s) for s in page.eval_on_selector_all("#history tbody tr", "rows => rows.map(r => r.dataset.seq)")]
    assert first == [tx.seq for tx in history[:20]]
    assert page.text_content("#account-balance") == shown(server.call(bank.get_balance("pager")), bank.settings.symbol)
    page.click("#history-older")
    page.wait_for_function("() => document.getElementById('history-page').textContent === 'page 2'")
    older = [int(s) for s in page.eval_on_selector_all("#history tbody tr", "rows => rows.map(r => r.dataset.seq)")]
    assert older == [tx.seq for tx in history[20:]]
    assert max(older) < min(first)
    assert page.is_disabled("#history-older")
    assert page.text_content("#history tbody tr:last-child td:nth-child(4)") == "+100.00"
    page.click("#history-newest")
    page.wait_for_function("() => document.getElementById('history-page').textContent === 'page 1'")
    assert page.problems == []


def test_the_page_works_under_its_content_security_policy(page: Any, server: LiveServer) -> None:
    response = page.goto(server.url + "/dashboard")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    page.wait_for_selector("#feed-state.live")
    page.wait_for_selector("#volume-chart svg")
    assert page.problems == []  # a violation would be a console error


def test_no_request_leaves_the_server(page: Any, server: LiveServer, tmp_path: Path) -> None:
    """Offline: every request the page makes goes to its own server (no CDN, no font service)."""
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(httpx.URL(request.url).host))
    open_dashboard(page, server)
    page.wait_for_selector("#volume-chart svg")
    assert hosts == {"127.0.0.1"}
