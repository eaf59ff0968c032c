"""The SQL store: SQLAlchemy 2 Core (async) on SQLite (the stdlib driver on one thread) or PostgreSQL (asyncpg)."""
