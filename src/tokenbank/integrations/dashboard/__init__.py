"""The operator dashboard: supply, volume per hour, leaderboard, a live transaction feed, account lookup with
history, health and sync lag, on one page served by FastAPI. Needs ``pip install 'tokenbank[fastapi]'``.

::

    app.include_router(create_dashboard(authorize=my_guard))   # GET /dashboard

The page is plain HTML, CSS and JavaScript shipped in the package (no build step, no third-party script).
"""

from tokenbank.integrations.dashboard.router import DASHBOARD_READ, BankSource, create_dashboard

__all__ = ["DASHBOARD_READ", "BankSource", "create_dashboard"]
