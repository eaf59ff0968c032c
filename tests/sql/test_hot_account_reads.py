"""Every read of a balance counts a hot account's slices: balances, leaderboard and rank, supply, balance_at,
the balance distribution, verify, and the checks of a controls change.

Each test runs on every SQL backend with ``hot_accounts`` set. On PostgreSQL the accounts are split into slices
and transfers through one slice record no balance after them (checked, so the test exercises that); SQLite leaves
the setting alone, and the same answers must come out. The expected figures come from replaying the writes the
test made.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from tests.backends import BoundBackend, by_name, params
from tokenbank import Settings, TokenBank, TransactionStateError
from tokenbank.ids import new_id
from tokenbank.storage.sql.schema import accounts, transactions

HOT = {"treasury": 8, "hub": 4}
USERS = [f"u{i}" for i in range(6)]
ACCOUNTS = ["treasury", "hub", *USERS]


async def raw(bank: TokenBank, statement: str, **params: Any) -> Any:
    """Raw SQL (bound ``:token``) in one write transaction on the bank's own connection: its first value."""
    run_sync: Callable[..., Any] = bank.storage.run_sync  # type: ignore[attr-defined]

    def work(conn: Connection) -> Any:
        result = conn.execute(sa.text(statement), {"token": bank.settings.symbol, **params})
        return result.scalar() if result.returns_rows else result.rowcount

    return await run_sync(work, write=True)


def sliced(backend: BoundBackend) -> bool:
    return backend.name == "postgres"


class Ledger:
    """The bank and the balances its writes should have left (decimals 0, so base units)."""

    def __init__(self, bank: TokenBank, supply: int) -> None:
        self.bank = bank
        self.balances = dict.fromkeys(ACCOUNTS, 0) | {"treasury": supply}
        self.moments: list[tuple[datetime, dict[str, int]]] = []

    async def transfer(self, sender: str, receiver: str, amount: int) -> None:
        await self.bank.transfer(sender, receiver, amount)
        self.balances[sender] -= amount
        self.balances[receiver] += amount

    async def mint(self, receiver: str, amount: int) -> None:
        await self.bank.mint(receiver, amount)
        self.balances[receiver] += amount

    async def moment(self) -> None:
        """A moment between two writes (apart from both by more than the clocks' resolution)."""
        await asyncio.sleep(0.01)
        self.moments.append((datetime.now(UTC), dict(self.balances)))
        await asyncio.sleep(0.01)

    def board(self, excluded: tuple[str, ...] = ("treasury",)) -> list[tuple[str, int]]:
        held = [(user, value) for user, value in self.balances.items() if value > 0 and user not in excluded]
        return sorted(held, key=lambda row: (-row[1], row[0]))


@pytest.fixture(params=[True, False], ids=["batched", "unbatched"])
async def ledger(request: pytest.FixtureRequest, sql_backend: BoundBackend) -> AsyncIterator[Ledger]:
    """A bank with two hot accounts after sequential and concurrent transfers, a mint (a write that gathers the
    slices: an exact balance again) and moments between them."""
    settings = sql_backend.settings(initial_supply=100_000, decimals=0, hot_accounts=HOT, batch_writes=request.param)
    async with TokenBank(settings) as bank:
        book = Ledger(bank, 100_000)
        rng = random.Random(7)
        await book.moment()
        for i, user in enumerate(USERS[:4]):
            await book.transfer("treasury", user, 100 * (i + 1))
            await book.moment()
        await asyncio.gather(
            *(book.transfer("treasury", rng.choice(USERS), rng.randint(1, 50)) for _ in range(24)),
            *(book.transfer("treasury", "hub", rng.randint(1, 9)) for _ in range(6)),
        )
        await book.moment()
        await book.mint("hub", 500)
        await book.moment()
        await asyncio.gather(
            *(book.transfer("hub", rng.choice(USERS), rng.randint(1, 20)) for _ in range(10)),
            *(book.transfer(user, "treasury", rng.randint(1, 5)) for user in USERS[:4]),
        )
        await book.moment()
        await book.transfer("treasury", "hub", 7)
        await book.transfer("u1", "hub", 3)
        await book.moment()
        yield book
        report = await bank.verify()
        assert report.ok, report


async def test_the_writes_went_through_slices_on_postgres(ledger: Ledger, sql_backend: BoundBackend) -> None:
    """What the other tests rely on: slices hold the hot accounts' balances, and entries lack their balance on the
    debited side (the treasury's) and on the credited side (the hub's)."""
    slices = await raw(ledger.bank, "SELECT count(*) FROM tb_account_shards WHERE token = :token")
    blind = (
        "SELECT count(*) > 0 FROM tb_transactions "
        "WHERE token = :token AND {0}_user_id = :user AND {0}_balance_after IS NULL"
    )
    sent = await raw(ledger.bank, blind.format("from"), user="treasury")
    received = await raw(ledger.bank, blind.format("to"), user="hub")
    assert (slices, sent, received) == ((12, True, True) if sliced(sql_backend) else (0, False, False))


async def test_balances_and_supply(ledger: Ledger) -> None:
    bank, expected = ledger.bank, ledger.balances
    assert {user: int(value) for user, value in (await bank.get_balances(ACCOUNTS)).items()} == expected
    for user in ACCOUNTS:
        assert await bank.get_balance(user) == expected[user]
        assert (await bank.get_account(user)).balance == expected[user]
    assert await bank.get_total_supply() == sum(expected.values())
    assert await bank.get_circulating_supply() == sum(expected.values()) - expected["treasury"]


async def test_leaderboard_pages_and_ranks(ledger: Ledger) -> None:
    bank, board = ledger.bank, ledger.board()
    assert "hub" in dict(board)
    assert [(h.user_id, int(h.balance)) for h in await bank.get_top_holders(limit=100)] == board
    for limit in (1, 2, 3):
        for offset in range(len(board) + 1):
            page = await bank.get_top_holders(limit=limit, offset=offset)
            assert [(h.user_id, int(h.balance)) for h in page] == board[offset : offset + limit], (limit, offset)
    ranks = {user: i for i, (user, _) in enumerate(board, 1)}
    for user in ACCOUNTS:
        assert await bank.get_rank(user) == ranks.get(user), user


async def test_balance_at_each_moment(ledger: Ledger) -> None:
    for at, balances in ledger.moments:
        for user in ACCOUNTS:
            assert await ledger.bank.get_balance_at(user, at) == balances[user], (at, user)


@pytest.mark.parametrize("exclude", [None, ["treasury", "hub"], ["u0"]], ids=["default", "no-hub", "with-treasury"])
async def test_balance_distribution(ledger: Ledger, exclude: list[str] | None) -> None:
    """The same as a plain bank's holding the same balances (a fresh SQLite ledger, funded account by account)."""
    plain = Settings.load(database_url="sqlite+aiosqlite:///:memory:", symbol="REF", decimals=0, initial_supply=0)
    async with TokenBank(plain) as reference:
        for user, value in ledger.balances.items():
            if value > 0:
                await reference.mint(user, value)
        expected = await reference.analytics.get_balance_distribution(exclude=exclude)
    found = await ledger.bank.analytics.get_balance_distribution(exclude=exclude)
    assert found == expected


@pytest.mark.parametrize("sql_backend", params(by_name("postgres")), indirect=True)
async def test_verify_counts_the_slices(ledger: Ledger) -> None:
    """A slice changed behind the ledger's back breaks the supply and the replay; one below zero (the account's
    total unchanged) breaks the floor check (PostgreSQL: the store that splits accounts)."""
    bank = ledger.bank

    async def failed() -> set[str]:
        return {check.name for check in (await bank.verify()).checks if not check.ok}

    hub = "WHERE token = :token AND user_id = 'hub' AND shard = :shard"
    shift = f"UPDATE tb_account_shards SET balance = balance + :units {hub}"
    await raw(bank, shift, units=1, shard=0)
    assert await failed() == {"balances + held == total supply", "balances == replayed ledger"}
    first = await raw(bank, f"SELECT balance FROM tb_account_shards {hub}", shard=0)
    await raw(bank, shift, units=-first - 1, shard=0)  # slice 0 at -1, slice 1 making up for it
    await raw(bank, shift, units=first, shard=1)
    assert await failed() == {"no balance below its overdraft"}
    await raw(bank, shift, units=1, shard=0)
    await raw(bank, shift, units=-1, shard=1)
    assert await failed() == set()


async def test_a_hot_account_holding_funds_cannot_be_closed(ledger: Ledger, sql_backend: BoundBackend) -> None:
    """A controls change sees the account's whole balance (its slices gathered into its row), then leaves it
    spread over its slices again."""
    bank, hub = ledger.bank, ledger.balances["hub"]
    assert hub > 0
    with pytest.raises(TransactionStateError):
        await bank.close_account("hub")
    await bank.set_limits("hub", max_balance=10 * hub)
    if sliced(sql_backend):
        row = await raw(bank, "SELECT balance FROM tb_accounts WHERE token = :token AND user_id = 'hub'")
        spread = await raw(bank, "SELECT sum(balance) FROM tb_account_shards WHERE token = :token AND user_id = 'hub'")
        assert (row, spread) == (0, hub)
    await ledger.transfer("hub", "u5", hub)
    assert await bank.get_balance("hub") == 0
    assert (await bank.close_account("hub")).closed


@pytest.fixture
async def tied(sql_backend: BoundBackend) -> AsyncIterator[TokenBank]:
    """``hub`` (hot) holds 50, as do ``a`` before it and ``z`` after it in user id order; ``m`` holds more.
    SQLite's writes never split an account, but its reads count slices all the same: there ``hub`` is split by
    hand, its row's balance moved into three slices."""
    settings = sql_backend.settings(initial_supply=1000, decimals=0, hot_accounts={"hub": 4})
    async with TokenBank(settings) as bank:
        for user, amount in (("a", 50), ("z", 50), ("m", 60), ("hub", 70)):
            await bank.transfer("treasury", user, amount)
        await bank.transfer("hub", "treasury", 20)
        if not sliced(sql_backend):
            await raw(bank, "UPDATE tb_accounts SET balance = 0 WHERE token = :token AND user_id = 'hub'")
            for shard, amount in enumerate((20, 20, 10)):
                await raw(bank, "INSERT INTO tb_account_shards VALUES (:token, 'hub', :shard, :amount)",
                          shard=shard, amount=amount)  # fmt: skip
        assert await raw(bank, "SELECT count(*) FROM tb_account_shards WHERE token = :token") > 0
        assert await bank.get_balance("hub") == 50
        yield bank
        assert (await bank.verify()).ok


async def test_a_hot_account_at_a_tie(tied: TokenBank) -> None:
    board = [(h.user_id, int(h.balance)) for h in await tied.get_top_holders(limit=10)]
    assert board == [("m", 60), ("a", 50), ("hub", 50), ("z", 50)]
    assert [h.user_id for h in await tied.get_top_holders(limit=1, offset=2)] == ["hub"]
    assert [h.user_id for h in await tied.get_top_holders(limit=2, offset=1)] == ["a", "hub"]
    assert [await tied.get_rank(user) for user in ("m", "a", "hub", "z")] == [1, 2, 3, 4]
    spread = await tied.analytics.get_balance_distribution()
    assert (spread.accounts, spread.total, spread.median, spread.percentiles.p10) == (4, *map(Decimal, (210, 50, 50)))


async def test_an_excluded_hot_account(tied: TokenBank) -> None:
    await tied.configure_token(leaderboard_exclude=["treasury", "hub"])
    assert [h.user_id for h in await tied.get_top_holders(limit=10)] == ["m", "a", "z"]
    assert await tied.get_rank("hub") is None
    assert await tied.get_rank("z") == 3
    assert await tied.get_circulating_supply() == 1000 - await tied.get_balance("treasury") - 50


async def test_balance_at_replays_entries_without_a_balance(sql_backend: BoundBackend) -> None:
    """The rule balance_at follows, on every side of an entry: entries written behind the bank's back (as a hot
    account's debits through one slice are) with no balance after them on either side, and the accounts' rows
    moved to match."""
    async with TokenBank(sql_backend.settings(initial_supply=1000, decimals=0)) as bank:
        run_sync: Callable[..., Any] = bank.storage.run_sync  # type: ignore[attr-defined]

        async def blind_transfer(sender: str, receiver: str, amount: int) -> None:
            def work(conn: Connection) -> None:
                conn.execute(
                    transactions.insert().values(
                        id=new_id(), token=bank.settings.symbol, type="transfer", from_user_id=sender,
                        to_user_id=receiver, amount=amount, created_at=datetime.now(UTC),
                    )
                )  # fmt: skip
                for user, change in ((sender, -amount), (receiver, amount)):
                    mine = sa.and_(accounts.c.token == bank.settings.symbol, accounts.c.user_id == user)
                    conn.execute(accounts.update().where(mine).values(balance=accounts.c.balance + change))

            await run_sync(work, write=True)

        book = Ledger(bank, 1000)
        await book.transfer("treasury", "u0", 100)
        await book.transfer("treasury", "u1", 1)  # (so both accounts have a row to move)
        await book.moment()
        for sender, receiver, amount in (("u0", "u1", 30), ("u1", "u0", 5), ("treasury", "u1", 2)):
            await blind_transfer(sender, receiver, amount)
            book.balances[sender] -= amount
            book.balances[receiver] += amount
            await book.moment()
        await book.transfer("u0", "u1", 1)
        await book.moment()
        await blind_transfer("u1", "u0", 4)
        book.balances["u1"] -= 4
        book.balances["u0"] += 4
        await book.moment()
        for at, balances in book.moments:
            for user in ("treasury", "u0", "u1"):
                assert await bank.get_balance_at(user, at) == balances[user], (at, user)
        # (SQLite hashes each entry as it writes it: the raw ones break its chain, not the balances.)
        failed = {check.name for check in (await bank.verify()).checks if not check.ok}
        assert failed <= {"chain"}, failed


@pytest.mark.parametrize("batch_writes", [True, False], ids=["batched", "unbatched"])
async def test_controls_changes_among_concurrent_debits(sql_backend: BoundBackend, batch_writes: bool) -> None:
    """A controls change gathers a hot account's slices while debits take them one each: all of them go through,
    and the account's balance is spread over its slices again afterwards."""
    settings = sql_backend.settings(initial_supply=10_000, decimals=0, hot_accounts=HOT, batch_writes=batch_writes)
    async with TokenBank(settings) as bank:
        book = Ledger(bank, 10_000)
        await asyncio.gather(
            *(book.transfer("treasury", USERS[i % len(USERS)], i + 1) for i in range(30)),
            *(bank.set_limits("treasury", max_balance=20_000 + i) for i in range(3)),
        )
        assert {user: int(value) for user, value in (await bank.get_balances(ACCOUNTS)).items()} == book.balances
        if sliced(sql_backend):
            row = await raw(bank, "SELECT balance FROM tb_accounts WHERE token = :token AND user_id = 'treasury'")
            spread = await raw(
                bank, "SELECT sum(balance) FROM tb_account_shards WHERE token = :token AND user_id = 'treasury'"
            )
            assert (row, spread) == (0, book.balances["treasury"])
        assert (await bank.verify()).ok
