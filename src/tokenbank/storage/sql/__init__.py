"""The SQL store: SQLAlchemy 2 Core (async) on SQLite (aiosqlite) or PostgreSQL (asyncpg)."""
