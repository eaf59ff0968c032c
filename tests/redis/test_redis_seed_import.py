"""Migration from the seed's NestJS Redis layout (token:info, balance:{userId}, balances:zset)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from tests.redis.conftest import BankFactory
from tokenbank.amounts import from_base_units, to_base_units
from tokenbank.errors import InvalidAmountError
from tokenbank.integrations.seed_import import import_seed_layout

pytestmark = pytest.mark.redis


async def test_seed_balances_are_imported_once(make_bank: BankFactory, redis_url: str, key_prefix: str) -> None:
    seed_prefix = "{" + key_prefix + ":seed}:"
    seed = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await seed.hset(seed_prefix + "token:info", mapping={"name": "Taro", "symbol": "TARO", "totalSupply": "1112.5"})
        balances = {"treasury": "1000", "alice": "12.5", "we:ird{id} *": "100", "zero": "0"}
        for user, amount in balances.items():
            await seed.set(seed_prefix + "balance:" + user, amount)
            await seed.zadd(seed_prefix + "balances:zset", {user: float(amount)})
        bank = await make_bank(initial_supply="0")
        report = await import_seed_layout(bank, seed, prefix=seed_prefix)
        assert (report.accounts, report.skipped_zero, report.errors) == (3, 1, [])
        assert report.seed_total_supply == "1112.5"
        assert await bank.get_balances(list(balances)) == {
            "treasury": Decimal("1000.00"), "alice": Decimal("12.50"), "we:ird{id} *": Decimal("100.00"),
            "zero": Decimal("0.00"),
        }  # fmt: skip
        assert await bank.get_total_supply() == Decimal("1112.50")
        again = await import_seed_layout(bank, seed, prefix=seed_prefix)
        assert again.replayed == 3
        assert await bank.get_total_supply() == Decimal("1112.50")
        assert (await bank.get_audit_log(limit=1))[0].action == "import.seed"
        assert (await bank.verify()).ok

        await seed.set(seed_prefix + "balance:bob", "0.125")  # more digits than the token's 2 decimals
        with pytest.raises(InvalidAmountError):
            await import_seed_layout(bank, seed, prefix=seed_prefix)
        assert await bank.get_balance("bob") == 0
    finally:
        await seed.aclose()


@pytest.mark.parametrize(
    ("decimals", "seed_balances", "expected_units"),
    [
        # 6 decimals: anything from ~9.2 million tokens up used to be scaled twice and refused; here 2**63-1
        # base units in all.
        (6, {"whale": "9223372036854.775806", "minnow": "0.000001"}, {"whale": 2**63 - 2, "minnow": 1}),
        # 18 decimals: even 10 base units used to be scaled twice and refused.
        (18, {"alice": "0.000000000000000010", "bob": "9.223372036854775797"}, {"alice": 10, "bob": 2**63 - 11}),
        # 2**53+1 base units: beyond what a double holds exactly.
        (2, {"carol": "90071992547409.93"}, {"carol": 2**53 + 1}),
    ],
)
async def test_large_seed_balances_are_imported_exactly(
    make_bank: BankFactory, redis_url: str, key_prefix: str, decimals: int, seed_balances: dict[str, str],
    expected_units: dict[str, int],
) -> None:  # fmt: skip
    seed_prefix = "{" + key_prefix + ":seed}:"
    seed = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        for user, amount in seed_balances.items():
            await seed.set(seed_prefix + "balance:" + user, amount)
        bank = await make_bank(initial_supply="0", decimals=decimals)
        report = await import_seed_layout(bank, seed, prefix=seed_prefix)
        assert (report.accounts, report.errors) == (len(seed_balances), [])
        assert report.imported_units == sum(expected_units.values())
        balances = await bank.get_balances(list(seed_balances))
        assert {user: to_base_units(value, decimals) for user, value in balances.items()} == expected_units
        assert {user: format(value, "f") for user, value in balances.items()} == seed_balances
        assert await bank.get_total_supply() == from_base_units(sum(expected_units.values()), decimals)
        again = await import_seed_layout(bank, seed, prefix=seed_prefix)
        assert (again.replayed, again.errors) == (len(seed_balances), [])
        assert (await bank.verify()).ok

        base_prefix = "{" + key_prefix + ":seed-units}:"
        for user, units in expected_units.items():
            await seed.set(base_prefix + "balance:" + user, str(units))
        in_units = await make_bank(initial_supply="0", decimals=decimals, symbol="UNITS")
        report = await import_seed_layout(in_units, seed, prefix=base_prefix, amounts_in_base_units=True)
        assert report.errors == []
        assert await in_units.get_balances(list(expected_units)) == balances
    finally:
        await seed.aclose()
