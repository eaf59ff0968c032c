"""SQLite: two banks (as two processes would) writing one file in turns keep one chain: each writer checks the head
it remembers against the journal and continues from the other's rows."""

from __future__ import annotations

from pathlib import Path

from tokenbank import Settings, TokenBank


async def test_two_writers_on_one_file_keep_one_chain(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    async with (
        TokenBank(Settings(database_url=url, symbol="ONE", initial_supply=1000)) as first,
        TokenBank(Settings(database_url=url, symbol="ONE")) as second,
        TokenBank(Settings(database_url=url, symbol="TWO", initial_supply=50)) as other,
    ):
        for i in range(6):
            await (first if i % 2 else second).transfer("treasury", f"u{i}", 1)
            await other.transfer("treasury", f"o{i}", 1)  # another token's rows in between
        for bank in (first, second, other):
            report = await bank.verify()
            assert report.ok, report
        [chain] = [c for c in (await first.verify()).checks if c.name == "chain"]
        assert chain.detail.startswith("7 entries chained")
