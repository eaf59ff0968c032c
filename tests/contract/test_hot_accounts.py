"""Hot accounts (``TOKEN_HOT_ACCOUNTS``): on PostgreSQL an account split into slices; elsewhere nothing to split.
On every store the account must behave exactly as any other: conservation under concurrent writers from several
banks, refusals only when its whole balance falls short, every other kind of write seeing its whole balance."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.backends import Backend, BoundBackend, Scope, by_name, params
from tokenbank import BalanceUpdate, TokenBank
from tokenbank.errors import AccountFrozenError, InsufficientBalanceError
from tokenbank.storage.sql.backend import SqlStorage


@pytest.fixture(params=params(by_name("postgres")))
def postgres_backend(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    """The store that splits hot accounts."""
    backend: Backend = request.param
    return backend.bind(Scope(tmp_path))


SUPPLY = 10_000
SLICES = 4
BANKS, TASKS, ROUNDS = 3, 8, 12


async def _slices(bank: TokenBank, account: str = "treasury") -> list[int]:
    """The account's slice balances (PostgreSQL), by slice; [] where it has none."""
    store = bank.storage
    if not isinstance(store, SqlStorage):
        return []
    query = sa.text("SELECT balance FROM tb_account_shards WHERE token = :t AND user_id = :u ORDER BY shard")
    rows = await store.run_sync(lambda conn: conn.execute(query, {"t": store.token, "u": account}).all())
    return [int(row[0]) for row in rows]


@pytest.mark.parametrize("batch_writes", [True, False], ids=["batched", "unbatched"])
async def test_concurrent_payouts_and_paybacks_from_several_banks_stay_exact(
    durable_backend: BoundBackend, batch_writes: bool
) -> None:
    backend = durable_backend
    settings = backend.settings(
        initial_supply=SUPPLY, decimals=0, hot_accounts={"treasury": SLICES}, batch_writes=batch_writes
    )
    banks = [TokenBank(settings) for _ in range(BANKS)]
    for opened in banks:
        await opened.open()
    paid_out: list[int] = []
    paid_back: list[int] = []
    refused: list[int] = []
    try:
        if backend.name == "postgres":
            assert sum(await _slices(banks[0])) == SUPPLY and len(await _slices(banks[0])) == SLICES
        else:
            assert await _slices(banks[0]) == []  # nothing to split: writes are applied one at a time

        async def worker(bank: TokenBank, n: int) -> None:
            rng = random.Random(n)
            for _ in range(ROUNDS):
                amount = rng.randint(1, 200)
                user = f"u{rng.randrange(6)}"
                try:
                    await bank.transfer("treasury", user, amount)
                    paid_out.append(amount)
                except InsufficientBalanceError:
                    refused.append(amount)
                if rng.random() < 0.3:
                    try:
                        await bank.transfer(user, "treasury", 1)
                        paid_back.append(1)
                    except InsufficientBalanceError:
                        pass

        await asyncio.gather(*(worker(bank, b * TASKS + t) for b, bank in enumerate(banks) for t in range(TASKS)))
        bank = banks[0]
        left = SUPPLY - sum(paid_out) + sum(paid_back)
        assert await bank.get_balance("treasury") == left
        users = await bank.get_balances([f"u{i}" for i in range(6)])
        assert sum(users.values()) + left == SUPPLY
        assert refused, "the payouts (up to 3 * 8 * 12 * 200) must exhaust the treasury"
        assert all(amount > 0 for amount in refused)
        # Whatever is left is payable to the last unit, however it lies across the slices, and no more.
        if left > 0:
            with pytest.raises(InsufficientBalanceError):
                await bank.transfer("treasury", "last", left + 1)
            await bank.transfer("treasury", "last", left)
        assert await bank.get_balance("treasury") == 0
        assert sum(await _slices(bank)) == 0
        report = await bank.verify()
        assert report.ok, report
    finally:
        for opened in banks:
            await opened.close()


async def test_other_writes_see_the_whole_balance_of_a_hot_account(backend: BoundBackend) -> None:
    settings = backend.settings(initial_supply=1000, decimals=0, hot_accounts={"treasury": SLICES})
    async with TokenBank(settings) as bank:
        await bank.transfer("treasury", "a", 10)  # one slice (on PostgreSQL) now holds less than the others
        await bank.mint("treasury", 5)
        assert await bank.get_balance("treasury") == 995
        # A hold of all of it, then its capture: more than any one slice holds.
        hold = await bank.hold("treasury", "b", 995, expires_in=timedelta(hours=1))
        assert await bank.get_balance("treasury") == 0
        assert await bank.get_held_balance("treasury") == 995
        await bank.capture(hold.id, 400)
        assert await bank.get_balance("treasury") == 595
        await bank.burn("treasury", 595)
        assert await bank.get_balance("treasury") == 0
        with pytest.raises(InsufficientBalanceError):
            await bank.transfer("treasury", "a", 1)
        await bank.transfer("b", "treasury", 300)
        # A freeze is seen by the next debit; after the unfreeze the account pays again, its balance whole.
        await bank.freeze("treasury", reason="audit")
        with pytest.raises(AccountFrozenError):
            await bank.transfer("treasury", "a", 1)
        await bank.unfreeze("treasury")
        await bank.transfer("treasury", "a", 300)
        assert await bank.get_balance("treasury") == 0
        assert await bank.get_total_supply() == Decimal(1005 - 595)
        report = await bank.verify()
        assert report.ok, report


async def test_a_freeze_stops_hot_debits_that_race_it(backend: BoundBackend) -> None:
    """Debits racing a freeze: every debit that starts after the freeze returned is refused, nothing is lost."""
    settings = backend.settings(initial_supply=SUPPLY, decimals=0, hot_accounts={"treasury": SLICES})
    async with TokenBank(settings) as bank:
        frozen = asyncio.Event()
        after_freeze: list[str] = []
        paid = 0

        async def payer(n: int) -> None:
            nonlocal paid
            for _ in range(20):
                started_frozen = frozen.is_set()
                try:
                    await bank.transfer("treasury", f"p{n}", 1)
                    paid += 1
                    if started_frozen:
                        after_freeze.append("paid")
                except AccountFrozenError:
                    pass
                await asyncio.sleep(0)

        async def freezer() -> None:
            await asyncio.sleep(0.01)
            await bank.freeze("treasury", reason="incident")
            frozen.set()

        await asyncio.gather(freezer(), *(payer(n) for n in range(8)))
        assert after_freeze == []
        assert await bank.get_balance("treasury") == SUPPLY - paid
        report = await bank.verify()
        assert report.ok, report


async def test_a_hot_account_is_joined_back_only_when_asked(postgres_backend: BoundBackend) -> None:
    backend = postgres_backend
    async with TokenBank(backend.settings(initial_supply=100, decimals=0, hot_accounts="treasury:3")) as bank:
        await bank.transfer("treasury", "a", 7)
        assert len(await _slices(bank)) == 3 and sum(await _slices(bank)) == 93
    async with TokenBank(backend.settings(decimals=0)) as bank:  # not named: left as it is
        assert len(await _slices(bank)) == 3
        assert await bank.get_balance("treasury") == 93
    async with TokenBank(backend.settings(decimals=0, hot_accounts="treasury:1")) as bank:
        assert await _slices(bank) == []
        assert await bank.get_balance("treasury") == 93
        await bank.transfer("treasury", "a", 93)
        assert (await bank.verify()).ok


async def test_balance_events_of_a_slice_leave_the_balance_unknown(postgres_backend: BoundBackend) -> None:
    backend = postgres_backend
    async with TokenBank(backend.settings(initial_supply=100, decimals=0, hot_accounts="treasury:2")) as bank:
        received: asyncio.Queue[BalanceUpdate] = asyncio.Queue()
        await bank.balances.subscribe_to_balance_updates("treasury", received.put_nowait)
        await bank.balances.subscribe_to_balance_updates("a", received.put_nowait)
        before = datetime.now(UTC)
        await bank.transfer("treasury", "a", 7)
        await bank.transfer("a", "treasury", 2)
        updates = [await asyncio.wait_for(received.get(), timeout=10) for _ in range(4)]
        treasury = [u for u in updates if u.user_id == "treasury"]
        assert [u.balance for u in treasury] == [None, None]  # through one slice: not known
        assert [u.change for u in treasury] == [-7, 2]
        assert [u.balance for u in updates if u.user_id == "a"] == [7, 5]
        assert await bank.get_balance_at("treasury", datetime.now(UTC)) == 95
        assert await bank.get_balance_at("treasury", before) == 100
