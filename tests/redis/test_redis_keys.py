"""Key layout: one hash tag per token, hostile account ids stay data, tokens sharing a Redis stay apart."""

from __future__ import annotations

from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from tests.redis.conftest import BankFactory
from tokenbank import InsufficientBalanceError, Settings, TokenBank
from tokenbank.errors import ConfigurationError
from tokenbank.storage.redis.backend import RedisStorage
from tokenbank.storage.redis.keys import TokenKeys

pytestmark = pytest.mark.redis

HOSTILE = [
    "a:b", "{tb:TARO}:bal", "}{", "*", "user *", "it's \"quoted\"", "'; DROP TABLE tb_accounts; --",
    "日本語のユーザー", "emoji 🪙", "x" * 128, "h:", "{TARO}", "\\", "[a-z]?",
]  # fmt: skip


async def _keys(url: str, prefix: str) -> list[str]:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        return sorted([key async for key in client.scan_iter(match="*" + prefix + "*", count=1000)])
    finally:
        await client.aclose()


async def test_hostile_account_ids_are_plain_data(bank: TokenBank, redis_url: str, key_prefix: str) -> None:
    for i, user in enumerate(HOSTILE, start=1):
        await bank.transfer("treasury", user, str(i))
    balances = await bank.get_balances(HOSTILE)
    assert balances == {user: Decimal(i) for i, user in enumerate(HOSTILE, start=1)}
    holders = await bank.get_top_holders(limit=100)
    assert {h.user_id for h in holders} == set(HOSTILE)
    for user in HOSTILE:
        page = await bank.transactions.get_transaction_history(user)
        assert [t.to_user_id for t in page.items] == [user]
        assert await bank.get_rank(user) is not None
    hold = await bank.hold(HOSTILE[1], HOSTILE[2], "1", expires_in=60)
    await bank.capture(hold.id)
    tag = "{" + key_prefix + ":TARO}"
    assert all(key.startswith(tag + ":") for key in await _keys(redis_url, key_prefix))
    assert all(check.ok for check in (await bank.verify()).checks)


async def test_two_tokens_share_one_redis_without_mixing(
    make_bank: BankFactory, redis_url: str, key_prefix: str
) -> None:
    taro = await make_bank(symbol="TARO")
    jiro = await make_bank(symbol="JIRO", initial_supply="50", decimals=0)
    await taro.transfer("treasury", "alice", "10")
    await jiro.transfer("treasury", "alice", "3")
    assert await taro.get_balance("alice") == Decimal("10.00")
    assert await jiro.get_balance("alice") == Decimal(3)
    assert await jiro.get_total_supply() == Decimal(50)
    assert len((await jiro.transactions.get_transaction_history("alice")).items) == 1
    keys = await _keys(redis_url, key_prefix)
    assert {key.split("}")[0] + "}" for key in keys} == {"{" + key_prefix + ":TARO}", "{" + key_prefix + ":JIRO}"}


def test_key_prefix_cannot_break_the_hash_tag() -> None:
    for bad in ("a}b", "{x", "a b", "tab\t"):
        with pytest.raises(ConfigurationError, match="TOKEN_KEY_PREFIX"):
            RedisStorage(Settings(storage_mode="redis", key_prefix=bad))
    keys = TokenKeys.for_token("tb*", "TARO")
    assert keys.bal == "{tb*:TARO}:bal"
    assert keys.scan_pattern == "{tb\\*:TARO}:*"
    assert keys.history("x}:{y") == "{tb*:TARO}:h:x}:{y"


async def test_memory_counters_stay_small(bank: TokenBank, redis_url: str, key_prefix: str) -> None:
    """Zero balances and empty holds leave no field behind (memory per account matters at 1M users)."""
    await bank.transfer("treasury", "alice", "5")
    await bank.transfer("alice", "bob", "5")
    hold = await bank.hold("bob", "carol", "5", expires_in=60)
    await bank.void(hold.id)
    await bank.transfer("bob", "treasury", "5")
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = TokenKeys.for_token(key_prefix, "TARO")
        assert await client.hgetall(keys.bal) == {"treasury": "100000"}
        assert await client.hgetall(keys.held) == {}
        # excluded accounts are left out when reading (the exclusion list is a setting), not when writing
        assert await client.zrange(keys.lb, 0, -1, withscores=True) == [("treasury", -100000.0)]
    finally:
        await client.aclose()


async def test_a_refused_debit_leaves_every_key_as_it_was(
    make_bank: BankFactory, redis_url: str, key_prefix: str
) -> None:
    """Debits take the amount in one HINCRBY and put it back when that went below zero: afterwards no field
    is created, changed or left at zero — also at 2**63-1 base units, where Lua numbers are inexact."""
    top = 2**63 - 1
    bank = await make_bank(decimals=0, initial_supply=str(top - 1))
    await bank.transfer("treasury", "rich", str(top - 2))  # treasury keeps 1
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = TokenKeys.for_token(key_prefix, "TARO")

    async def snapshot() -> tuple[object, ...]:
        return (
            await client.hgetall(keys.bal),
            await client.zrange(keys.lb, 0, -1, withscores=True),
            await client.get(keys.seq),
            await client.hlen(keys.tx),
        )

    try:
        before = await snapshot()
        for sender, amount in (("nobody", 1), ("treasury", 2), ("rich", top - 1), ("rich", top)):
            with pytest.raises(InsufficientBalanceError):
                await bank.transfer(sender, "someone", str(amount))
            with pytest.raises(InsufficientBalanceError):
                await bank.burn(sender, str(amount))
        assert await snapshot() == before
        assert await client.hget(keys.bal, "rich") == str(top - 2)
        await bank.transfer("rich", "treasury", str(top - 2))  # exactly covered: the account empties
        assert await client.hgetall(keys.bal) == {"treasury": str(top - 1)}
        assert (await bank.verify()).ok
    finally:
        await client.aclose()


def test_without_a_ledger_group_the_key_names_are_unchanged() -> None:
    keys = TokenKeys.for_token("tb", "TARO")
    assert keys == TokenKeys.for_token("tb", "TARO", None)
    assert (keys.tag, keys.bal, keys.history("a"), keys.spends("a")) == (
        "{tb:TARO}", "{tb:TARO}:bal", "{tb:TARO}:h:a", "{tb:TARO}:sw:a",
    )  # fmt: skip


def test_a_ledger_group_puts_its_tokens_in_one_slot_with_the_symbol_after_the_tag() -> None:
    from redis.crc import key_slot

    taro, jiro = TokenKeys.for_token("tb", "TARO", "game"), TokenKeys.for_token("tb", "JIRO", "game")
    assert (taro.bal, taro.history("a"), taro.spends("a"), taro.chain_hashes) == (
        "{tb:game}:TARO:bal", "{tb:game}:TARO:h:a", "{tb:game}:TARO:sw:a", "{tb:game}:TARO:chainhash",
    )  # fmt: skip
    slots = {key_slot(key.encode()) for keys in (taro, jiro) for key in (*keys.write_keys(), keys.history("x"))}
    assert len(slots) == 1
    assert not set(taro.write_keys()) & set(jiro.write_keys())
    assert taro.scan_pattern == "{tb:game}:TARO:*"


async def test_tokens_of_one_group_share_one_redis_without_mixing(
    make_bank: BankFactory, redis_url: str, key_prefix: str
) -> None:
    taro = await make_bank(symbol="TARO", ledger_group="game")
    tar = await make_bank(symbol="TAR", ledger_group="game", initial_supply="7", decimals=0)
    await taro.transfer("treasury", "alice", "10")
    await tar.transfer("treasury", "alice", "3")
    assert await taro.get_balances(["alice", "treasury"]) == {"alice": Decimal(10), "treasury": Decimal(990)}
    assert await tar.get_balances(["alice", "treasury"]) == {"alice": Decimal(3), "treasury": Decimal(4)}
    assert [t.amount for t in (await tar.transactions.get_transaction_history("alice")).items] == [Decimal(3)]
    keys = await _keys(redis_url, key_prefix)
    assert {key.split("}")[0] + "}" for key in keys} == {"{" + key_prefix + ":game}"}
    assert all(check.ok for check in (await tar.verify()).checks)
    assert all(check.ok for check in (await taro.verify()).checks)
