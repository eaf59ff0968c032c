"""Migration from the seed's NestJS Redis layout (token:info, balance:{userId}, balances:zset)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from tokenbank.errors import InvalidAmountError
from tokenbank.storage.redis.seed_import import import_seed_layout

pytestmark = pytest.mark.redis


async def test_seed_balances_are_imported_once(make_bank, redis_url: str, key_prefix: str) -> None:
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
