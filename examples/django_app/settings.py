"""A tiny Django project using tokenbank: ``DJANGO_SETTINGS_MODULE=examples.django_app.settings``."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
ROOT_URLCONF = "examples.django_app.urls"
INSTALLED_APPS = ["tokenbank.integrations.django"]
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# Any tokenbank Settings field; what is missing comes from the environment (DATABASE_URL, TOKEN_*...).
TOKENBANK = {
    "database_url": os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///tokenbank.db"),
    "symbol": "GEMS",
    "initial_supply": 1_000_000,
}

# The transfer view's simple guard: callers send "Authorization: Bearer <this>".
TRANSFER_TOKEN = os.environ.get("TRANSFER_TOKEN", "change-me")
