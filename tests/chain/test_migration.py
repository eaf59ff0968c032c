"""Revision 0006 on a journal written before it: SQLite's rows are hashed by the upgrade (PostgreSQL's by the
sealer, as every row there is); the downgrade takes the column away again."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Connection

from tests.backends import BoundBackend, by_name, params
from tokenbank import TokenBank
from tokenbank.storage.capabilities import ChainStore
from tokenbank.storage.sql.migrate import _config


def _migrate(connection: Connection, action: str, revision: str) -> None:
    config = _config()
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


@pytest.mark.parametrize("backend", params(by_name("sqlite")), indirect=True)
async def test_sqlite_rows_before_0006_are_hashed_by_the_upgrade(backend: BoundBackend, tmp_path: Path) -> None:
    settings = backend.settings(initial_supply=1000)
    async with TokenBank(settings) as bank:
        for i in range(5):
            await bank.transfer("treasury", f"u{i}", i + 1, metadata={"i": i})
    engine = sa.create_engine(settings.database_url.replace("+aiosqlite", ""))
    try:
        with engine.begin() as conn:
            _migrate(conn, "downgrade", "0005")
            columns = conn.exec_driver_sql("SELECT name FROM pragma_table_info('tb_transactions')")
            assert "hash" not in {row[0] for row in columns}
            _migrate(conn, "upgrade", "head")
    finally:
        engine.dispose()
    async with TokenBank(settings) as bank:
        store = bank.storage
        assert isinstance(store, ChainStore)
        entries = await store.chain_entries(0, 100)
        assert len(entries) == 6 and all(e.hash for e in entries)
        await bank.transfer("treasury", "late", 1)  # the writer continues from the backfilled head
        report = await bank.verify()
        assert report.ok, report
        assert [c.detail for c in report.checks if c.name == "chain"] == ["7 entries chained, 0 checkpoints"]
