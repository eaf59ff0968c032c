"""``storage/sql/schema.py`` (what the code reads and writes) against the database the migrations build.

Alembic's ``compare_metadata`` lists every difference in tables, columns, types, nullability, indexes and
unique constraints between the two; after ``upgrade head`` on a fresh database it must list none. Tables the
code never reads through SQLAlchemy Core (the hybrid sync state and conflicts, PostgreSQL only) are left out.
It does not compare the WHERE clause of a partial index, so the PostgreSQL test compares those itself.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import create_async_engine

from tests.backends import POSTGRES_URL
from tokenbank.storage.sql.migrate import upgrade_to_head
from tokenbank.storage.sql.schema import metadata

_NOT_IN_SCHEMA = {"tb_alembic_version", "tokenbank_alembic_version", "tb_sync_state", "tb_sync_conflicts"}


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (type_ == "table" and name in _NOT_IN_SCHEMA)


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": False, "include_object": _include}
    )
    return list(compare_metadata(context, metadata))


def _where(text: str | None) -> str:
    return "".join(ch for ch in (text or "").lower() if ch not in "() ")


def _partial_index_differences(conn: Connection) -> list[str]:
    """Indexes whose WHERE clause differs between schema.py and the database (names of the indexes)."""
    inspector = sa.inspect(conn)
    out = []
    for table in metadata.tables.values():
        reflected = {
            ix["name"]: ix.get("dialect_options", {}).get("postgresql_where")
            for ix in inspector.get_indexes(table.name)
        }
        for index in table.indexes:
            where = index.dialect_options["postgresql"]["where"]
            declared = (
                None
                if where is None
                else str(where.compile(dialect=postgresql.dialect(), compile_kwargs={"include_table": False}))  # type: ignore[no-untyped-call]
            )
            if _where(declared) != _where(reflected.get(str(index.name))):
                out.append(f"{index.name}: schema.py {declared!r}, database {reflected.get(str(index.name))!r}")
    return out


def test_sqlite_schema_matches_migrations(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        with engine.begin() as conn:
            upgrade_to_head(conn)
        with engine.connect() as conn:
            assert _differences(conn) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
async def test_postgres_schema_matches_migrations() -> None:
    schema = "tbmig_" + secrets.token_hex(4)
    engine = create_async_engine(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: upgrade_to_head(c, schema))
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
            assert await conn.run_sync(_partial_index_differences) == []
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()
