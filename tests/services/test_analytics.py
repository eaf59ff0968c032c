"""bank.analytics against a hand-built ledger: exact buckets, windows, top lists, distribution, supply."""

from __future__ import annotations

import decimal
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import TypeVar

import pytest
from sqlalchemy import Connection

from tests.backends import BoundBackend
from tests.services.ledger import T0, D, H, build
from tests.support import assert_error, open_bank
from tokenbank import ConfigurationError, InvalidRequestError, Settings, TokenBank
from tokenbank.services.analytics import AnalyticsService, Percentiles, VolumeBucket
from tokenbank.storage.capabilities import SqlLedgerAccess

T = TypeVar("T")


@pytest.fixture
async def ledger(sql_backend: BoundBackend) -> AsyncIterator[TokenBank]:
    async with open_bank(sql_backend) as bank:
        await build(bank)
        yield bank


def bucket(start: object, count: int, volume: str) -> VolumeBucket:
    return VolumeBucket(start, count, Decimal(volume))  # type: ignore[arg-type]


async def test_hourly_volume(ledger: TokenBank) -> None:
    analytics = AnalyticsService(ledger)
    assert await analytics.get_volume(T0, T0 + 3 * H) == [
        bucket(T0, 2, "350.50"),  # 00:10 and 00:59:59.999999
        bucket(T0 + H, 2, "30.01"),  # 01:00 exactly belongs to the second hour
        bucket(T0 + 2 * H, 0, "0.00"),  # empty periods are reported
    ]
    # half-open windows: the row at 01:00 is in [01:00, 02:00), the one a microsecond earlier is not
    assert await analytics.get_volume(T0 + H, T0 + 2 * H) == [bucket(T0 + H, 2, "30.01")]
    # a window starting inside an hour: the bucket keeps the hour's start, rows before `since` are left out
    assert await analytics.get_volume(T0 + timedelta(minutes=30), T0 + H) == [bucket(T0, 1, "250.50")]


async def test_daily_volume_and_types(ledger: TokenBank) -> None:
    analytics = AnalyticsService(ledger)
    assert await analytics.get_volume(T0, T0 + 2 * D, period="day") == [
        bucket(T0, 5, "381.51"),
        bucket(T0 + D, 1, "0.01"),
    ]
    assert await analytics.get_volume(T0, T0 + 2 * D, period="day", types=("mint", "burn")) == [
        bucket(T0, 2, "10500.00"),
        bucket(T0 + D, 1, "5.00"),
    ]
    assert await analytics.get_volume(T0 - D, T0, period="day") == [bucket(T0 - D, 0, "0.00")]


async def test_minute_volume(ledger: TokenBank) -> None:
    buckets = await AnalyticsService(ledger).get_volume(T0, T0 + H, period="minute")
    assert len(buckets) == 60
    assert [(b.start - T0, b.count, b.volume) for b in buckets if b.count] == [
        (timedelta(minutes=10), 1, Decimal("100.00")),
        (timedelta(minutes=59), 1, Decimal("250.50")),
    ]


async def test_active_accounts(ledger: TokenBank) -> None:
    analytics = AnalyticsService(ledger)
    assert await analytics.get_active_accounts(T0, T0 + D) == 5  # treasury, alice, bob, carol, dave
    assert await analytics.get_active_accounts(T0 + D, T0 + 2 * D) == 2  # carol, alice
    assert await analytics.get_active_accounts(T0 + D, T0 + 2 * D, types=("mint",)) == 1  # erin
    assert await analytics.get_active_accounts(T0, T0 + 2 * D, types=("transfer", "mint", "burn")) == 6
    assert await analytics.get_active_accounts(T0 - D, T0) == 0


async def test_top_senders_and_receivers(ledger: TokenBank) -> None:
    analytics = AnalyticsService(ledger)
    senders = await analytics.get_top_senders(T0, T0 + 2 * D)
    assert [(a.rank, a.user_id, a.volume, a.count) for a in senders] == [
        (1, "treasury", Decimal("351.50"), 3),
        (2, "alice", Decimal("30.00"), 1),
        (3, "bob", Decimal("0.01"), 1),  # a tie, broken by account id
        (4, "carol", Decimal("0.01"), 1),
    ]
    receivers = await analytics.get_top_receivers(T0, T0 + 2 * D, limit=2)
    assert [(a.rank, a.user_id, a.volume, a.count) for a in receivers] == [
        (1, "bob", Decimal("280.50"), 2),
        (2, "alice", Decimal("100.01"), 2),
    ]
    burners = await analytics.get_top_senders(T0, T0 + 2 * D, types=["burn"])
    assert [(a.user_id, a.volume) for a in burners] == [("treasury", Decimal("500.00"))]
    assert await analytics.get_top_receivers(T0 - D, T0) == []


def reference_percentile(values: list[int], percent: int) -> Fraction:
    """Linear interpolation between closest ranks, straight from the definition."""
    h = Fraction((len(values) - 1) * percent, 100)
    low = int(h)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (h - low)


def reference_gini(values: list[int]) -> Fraction:
    n, total = len(values), sum(values)
    pairs = sum(abs(a - b) for a in values for b in values)  # mean absolute difference form
    return Fraction(pairs, 2 * n * total)


async def test_balance_distribution(ledger: TokenBank) -> None:
    dist = await AnalyticsService(ledger).get_balance_distribution()
    units = [100, 500, 7001, 28049]  # dave, erin, alice, bob; carol's 0 and the treasury are not counted
    assert dist.accounts == 4
    assert dist.excluded == ("treasury",)
    assert dist.include_zero is False
    assert dist.total == Decimal("356.50")
    assert dist.mean == Decimal("89.125")
    assert dist.median == Decimal("37.505")
    assert dist.percentiles == Percentiles(
        p10=Decimal("2.2"),
        p25=Decimal("4"),
        p50=Decimal("37.505"),
        p75=Decimal("122.63"),
        p90=Decimal("217.346"),
        p99=Decimal("274.1756"),
    )
    for p in (10, 25, 50, 75, 90, 99):
        assert (
            getattr(dist.percentiles, f"p{p}")
            == Decimal(reference_percentile(units, p).numerator)
            / Decimal(reference_percentile(units, p).denominator)
            / 100
        )
    expected_gini = reference_gini(units)
    assert expected_gini == Fraction(90348, 142600)
    assert abs(Fraction(dist.gini) - expected_gini) < Fraction(1, 10**27)


async def test_distribution_with_zeros_and_everyone(ledger: TokenBank) -> None:
    analytics = AnalyticsService(ledger)
    with_zero = await analytics.get_balance_distribution(include_zero=True)
    assert (with_zero.accounts, with_zero.total, with_zero.median) == (5, Decimal("356.50"), Decimal("5"))
    assert with_zero.percentiles.p10 == Decimal("0.4")  # between carol's 0 and dave's 1.00
    everyone = await analytics.get_balance_distribution(exclude=())
    assert everyone.accounts == 5
    assert everyone.total == Decimal("9505.00")  # every balance: the supply (no holds are open)
    only_bob_out = await analytics.get_balance_distribution(exclude=["treasury", "bob"])
    assert (only_bob_out.accounts, only_bob_out.total) == (3, Decimal("76.01"))


@pytest.mark.parametrize(
    ("balances", "include_zero", "gini", "accounts"),
    [
        ([1, 1, 1, 1], False, Decimal(0), 4),
        ([0, 0, 0, 10], True, Decimal("0.75"), 4),  # (n-1)/n: one account holds everything
        ([0, 0, 0, 10], False, Decimal(0), 1),  # zeros not counted: one holder, perfectly "equal"
        ([1, 2, 3, 4], False, Decimal("0.25"), 4),
        ([], False, Decimal(0), 0),
    ],
)
async def test_gini_of_known_distributions(
    sql_backend: BoundBackend, balances: list[int], include_zero: bool, gini: Decimal, accounts: int
) -> None:
    async with open_bank(sql_backend, decimals=0) as bank:
        for i, amount in enumerate(balances):
            await bank.mint(f"u{i}", 1)
            if amount == 0:
                await bank.burn(f"u{i}", 1)
            elif amount > 1:
                await bank.mint(f"u{i}", amount - 1)
        dist = await AnalyticsService(bank).get_balance_distribution(include_zero=include_zero)
        assert (dist.gini, dist.accounts) == (gini, accounts)
        if not accounts:
            assert dist.mean == dist.median == dist.total == dist.percentiles.p99 == 0


async def test_distribution_is_exact_beyond_doubles(sql_backend: BoundBackend) -> None:
    a, b = 2**62 - 5, 2**62 + 1  # sum 2**63 - 4; rank-weighted sums overflow 64 bits
    async with open_bank(sql_backend, decimals=0) as bank:
        await bank.mint("a", a)
        await bank.mint("b", b)
        dist = await AnalyticsService(bank).get_balance_distribution()
    assert dist.total == a + b
    assert dist.median == Decimal(a + b) / 2 == 2**62 - 2
    assert dist.percentiles.p99 == a + Decimal(b - a) * Decimal("0.99")
    assert Fraction(dist.gini) - Fraction(b - a, 2 * (a + b)) < Fraction(1, 10**27)


async def test_volume_sums_beyond_64_bits(sql_backend: BoundBackend) -> None:
    big = 2**62 + 7
    # Not open_bank: its verify() sums every type's volume, which on SQLite overflows here (reported).
    async with TokenBank(sql_backend.settings(decimals=0)) as bank:
        record = bank.transactions.record_transaction
        await record({"type": "mint", "to_user_id": "alice", "amount": big, "timestamp": T0})
        await record({"type": "transfer", "from_user_id": "alice", "to_user_id": "bob", "amount": big,
                      "timestamp": T0 + timedelta(minutes=1)})  # fmt: skip
        await record({"type": "transfer", "from_user_id": "bob", "to_user_id": "alice", "amount": big,
                      "timestamp": T0 + timedelta(minutes=2)})  # fmt: skip
        analytics = AnalyticsService(bank)
        # 2**63 + 14 in one bucket: more than a signed 64-bit sum holds
        assert await analytics.get_volume(T0, T0 + H) == [bucket(T0, 2, str(2 * big))]
        top = await analytics.get_top_senders(T0, T0 + H)
        assert [(t.user_id, t.volume) for t in top] == [("alice", big), ("bob", big)]
        [point] = await analytics.get_supply_over_time(T0, T0 + H, period="hour")
        assert (point.minted, point.supply) == (big, big)


async def test_supply_over_time(ledger: TokenBank) -> None:
    analytics = AnalyticsService(ledger)
    points = await analytics.get_supply_over_time(T0 - D, T0 + 3 * D)
    assert [(p.start, p.minted, p.burned, p.net, p.supply) for p in points] == [
        (T0 - D, 0, 0, 0, 0),
        (T0, Decimal("10000.00"), Decimal("500.00"), Decimal("9500.00"), Decimal("9500.00")),
        (T0 + D, Decimal("5.00"), 0, Decimal("5.00"), Decimal("9505.00")),
        (T0 + 2 * D, 0, 0, 0, Decimal("9505.00")),
    ]
    # a window that starts after the genesis mint and ends before erin's mint: the opening supply comes from
    # the ledger, and later changes do not leak in
    hourly = await analytics.get_supply_over_time(T0 + 2 * H, T0 + 4 * H, period="hour")
    assert [(p.start, p.burned, p.supply) for p in hourly] == [
        (T0 + 2 * H, Decimal("500.00"), Decimal("9500.00")),
        (T0 + 3 * H, 0, Decimal("9500.00")),
    ]
    assert points[-1].supply == await ledger.get_total_supply()


async def test_until_defaults_to_now(ledger: TokenBank) -> None:
    analytics = AnalyticsService(ledger)
    buckets = await analytics.get_volume(T0, period="day")
    assert sum(b.count for b in buckets) == 6
    assert (await analytics.get_supply_over_time(T0 - D))[-1].supply == Decimal("9505.00")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a: a.get_volume(T0.replace(tzinfo=None), T0 + H), "timezone-aware"),
        (lambda a: a.get_volume(T0, T0.replace(tzinfo=None) + H), "timezone-aware"),
        (lambda a: a.get_volume("2024-03-01", T0 + H), "timezone-aware"),
        (lambda a: a.get_volume(T0 + H, T0), "before until"),
        (lambda a: a.get_volume(T0, T0), "before until"),
        (lambda a: a.get_volume(T0, T0 + H, period="week"), "period must be one of"),
        (lambda a: a.get_volume(T0, T0 + 100 * D, period="minute"), "buckets"),
        (lambda a: a.get_volume(T0, T0 + H, types=["gift"]), "unknown transaction type"),
        (lambda a: a.get_volume(T0, T0 + H, types=[]), "at least one"),
        (lambda a: a.get_top_senders(T0, T0 + H, limit=0), "limit"),
        (lambda a: a.get_top_receivers(T0, T0 + H, limit=1001), "limit"),
        (lambda a: a.get_active_accounts(T0, T0 + H, types=None), "unknown transaction type"),
        (lambda a: a.count_transactions(T0 + H, T0), "before until"),
    ],
)
async def test_bad_arguments(call: object, message: str) -> None:
    # Arguments are checked before the store is asked: a bank that was never opened will do.
    bank = TokenBank(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    with pytest.raises(InvalidRequestError, match=message) as info:
        await call(AnalyticsService(bank))  # type: ignore[operator]
    assert_error(info.value, InvalidRequestError)


async def test_single_type_string_is_accepted(ledger: TokenBank) -> None:
    assert await AnalyticsService(ledger).get_active_accounts(T0, T0 + 2 * D, types="burn") == 1


async def test_a_store_without_sql_ledger_is_refused() -> None:
    class RedisLike:
        pass

    bank = TokenBank(Settings(database_url="sqlite+aiosqlite:///:memory:"), storage=RedisLike())  # type: ignore[arg-type]
    analytics = AnalyticsService(bank)
    for call in (
        analytics.get_volume(T0, T0 + H),
        analytics.get_balance_distribution(),
        analytics.get_supply_over_time(T0, T0 + D),
        analytics.get_last_seq(),
    ):
        with pytest.raises(ConfigurationError, match="analytics needs the sql or hybrid store") as info:
            await call
        assert_error(info.value, ConfigurationError)


async def test_hybrid_store_is_read_through_its_sql_side(ledger: TokenBank) -> None:
    storage = ledger.storage
    assert isinstance(storage, SqlLedgerAccess)
    sql_side: SqlLedgerAccess = storage  # the narrowed type, for the class body below

    class HybridLike(SqlLedgerAccess):
        """Declares SQL ledger access and answers it from its SQL side, as the hybrid store does."""

        token = sql_side.token

        async def run_sync(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
            return await sql_side.run_sync(fn, write=write)

    bank = TokenBank(ledger.settings, storage=HybridLike())  # type: ignore[arg-type]
    assert await AnalyticsService(bank).get_active_accounts(T0, T0 + D) == 5


async def test_sqlite_scan_pages_through_ties(sql_backend: BoundBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokenbank.storage.sql import analytics as sql

    monkeypatch.setattr(sql, "SCAN_CHUNK", 2)  # many keyset pages, page edges inside runs of equal balances
    units = [5, 5, 5, 7, 7, 9, 12]
    async with open_bank(sql_backend, decimals=0) as bank:
        for i, amount in enumerate(units):
            await bank.mint(f"u{i}", amount)
        dist = await AnalyticsService(bank).get_balance_distribution()
    assert (dist.accounts, dist.total) == (7, sum(units))
    for p in (10, 25, 50, 75, 90, 99):
        expected = reference_percentile(units, p)
        assert getattr(dist.percentiles, f"p{p}") == Decimal(expected.numerator) / expected.denominator
    assert abs(Fraction(dist.gini) - reference_gini(units)) < Fraction(1, 10**27)


async def test_caller_decimal_context_plays_no_part(ledger: TokenBank) -> None:
    with decimal.localcontext(prec=3):
        dist = await AnalyticsService(ledger).get_balance_distribution()
    assert dist.percentiles.p99 == Decimal("274.1756")
    assert dist.mean == Decimal("89.125")
