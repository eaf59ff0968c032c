"""What the Redis store keeps besides balances: the ledger stream, capped history, verify() on tampering."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import cast

import pytest
import redis.asyncio as aioredis

from tokenbank import Settings, TokenBank
from tokenbank.errors import InvalidRequestError
from tokenbank.storage.redis.backend import RedisStorage
from tokenbank.storage.redis.keys import TokenKeys

pytestmark = pytest.mark.redis


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_stream_carries_every_transaction_field(bank: TokenBank, raw: aioredis.Redis, key_prefix: str) -> None:
    tx = await bank.transfer("treasury", "alice", "2.5", idempotency_key="k", metadata={"a": [1]}, reason="r")
    hold = await bank.hold("alice", "bob", "1", expires_in=60)
    await bank.capture(hold.id, "0.4")
    # decode_responses=True: ids, fields and values are str (redis-py's annotations cannot say so).
    entries = cast("list[tuple[str, dict[str, str]]]", await raw.xrange(TokenKeys.for_token(key_prefix, "TARO").stream))
    assert all(list(entry) == ["tx"] for _, entry in entries)  # one field: the transaction JSON
    fields = [json.loads(entry["tx"]) for _, entry in entries]
    assert [f["type"] for f in fields] == ["mint", "transfer", "hold", "capture", "void"]
    assert [int(f["seq"]) for f in fields] == [1, 2, 3, 4, 5]
    transfer = fields[1]
    assert transfer == {
        "seq": "2", "id": tx.id, "type": "transfer", "from_user_id": "treasury", "to_user_id": "alice",
        "amount": "250", "from_balance_after": "99750", "to_balance_after": "250",
        "created_at": transfer["created_at"], "metadata": '{"a":[1]}', "idempotency_key": "k",
        "request_hash": transfer["request_hash"], "reason": "r",
    }  # fmt: skip
    assert fields[4]["hold_id"] == hold.id and fields[4]["reason"] == "released by partial capture"


async def test_history_is_capped_per_account(redis_url: str, key_prefix: str, raw: aioredis.Redis) -> None:
    settings = Settings(storage_mode="redis", redis_url=redis_url, key_prefix=key_prefix, symbol="CAP",
                        initial_supply="100", hold_sweep_interval=0)  # fmt: skip
    async with TokenBank(settings, storage=RedisStorage(settings, history_retention=3)) as bank:
        first = await bank.transfer("treasury", "alice", "1")
        for _ in range(4):
            await bank.transfer("treasury", "alice", "1")
        page = await bank.transactions.get_transaction_history("alice", limit=10)
        assert [t.seq for t in page.items] == [6, 5, 4]
        assert await bank.transactions.get_transaction_by_id(first.id) == first  # the ledger entry stays
        assert await bank.get_balance_at("alice", datetime.now(UTC)) == Decimal("5.00")
        with pytest.raises(InvalidRequestError, match="retained history"):
            await bank.get_balance_at("alice", first.timestamp - timedelta(seconds=1))
        assert await raw.zcard(TokenKeys.for_token(key_prefix, "CAP").history("alice")) == 3
        assert (await bank.verify()).ok


async def test_verify_reports_tampering(bank: TokenBank, raw: aioredis.Redis, key_prefix: str) -> None:
    keys = TokenKeys.for_token(key_prefix, "TARO")
    await bank.transfer("treasury", "alice", "1")
    assert (await bank.verify()).ok
    await raw.hincrby(keys.bal, "alice", 1)
    failed = {c.name for c in (await bank.verify()).checks if not c.ok}
    assert failed == {"balances + held == total supply", "balances == replayed ledger", "leaderboard == balances"}
    await raw.hincrby(keys.bal, "alice", -1)
    await raw.hset(keys.held, "bob", "-3")
    failed = {c.name for c in (await bank.verify()).checks if not c.ok}
    assert {"no balance below its overdraft", "held == pending holds"} <= failed
    await raw.hdel(keys.held, "bob")
    assert (await bank.verify()).ok


async def test_verify_flags_a_balance_below_what_its_overdraft_allows(
    bank: TokenBank, raw: aioredis.Redis, key_prefix: str
) -> None:
    keys = TokenKeys.for_token(key_prefix, "TARO")
    name = "no balance below its overdraft"

    async def flagged() -> bool:
        return any(c.name == name and not c.ok for c in (await bank.verify()).checks)

    await bank.set_limits("carol", overdraft="0.05")
    await bank.transfer("carol", "bob", "0.05")  # carol at -0.05: allowed
    assert (await bank.verify()).ok
    assert await raw.zscore(keys.lb, "carol") is None and await raw.hget(keys.bal, "carol") == "-5"
    await raw.hset(keys.bal, "carol", "-6")
    assert await flagged()
    await raw.hset(keys.bal, "carol", "-5")
    await raw.hset(keys.bal, "dave", "-1")  # no overdraft at all
    assert await flagged()
    await raw.hdel(keys.bal, "dave")
    assert (await bank.verify()).ok
