"""Credit lots written in the layout of earlier builds (the ``lots`` hash keyed by account, each field the
account's lots as one JSON array in spend order) are moved to the layout of lua/lots.lua when a bank opens, and
read, locked and spent exactly as before."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from tokenbank import Settings, TokenBank
from tokenbank.status import Status
from tokenbank.storage.base import LotRecord, OpKind, WriteOp
from tokenbank.storage.redis.backend import RedisStorage
from tokenbank.storage.wire import from_us, to_us
from tokenbank.testing import ManualClock

pytestmark = pytest.mark.redis

HOUR = timedelta(hours=1)
START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def storage_of(bank: TokenBank) -> RedisStorage:
    assert isinstance(bank.storage, RedisStorage)
    return bank.storage


def grant(lot_id: str, to: str, amount: int, expires_in: timedelta | None, available_in: timedelta | None) -> WriteOp:
    return WriteOp(
        kind=OpKind.GRANT, tx_id=lot_id, to_user_id=to, amount=amount, timestamp=START,
        expires_at=None if expires_in is None else START + expires_in,
        available_at=None if available_in is None else START + available_in, category="c-" + lot_id,
    )  # fmt: skip


GRANTS = [  # (lot id, account, amount, expires in, available in)
    ("lot-b", "alice", 100, HOUR, None),
    ("lot-a", "alice", 100, HOUR, None),  # the same expiry as lot-b: before it, by id
    ("lot-c", "alice", 100, None, None),  # no expiry: last
    ("lot-e", "alice", 100, 5 * HOUR, 2 * HOUR),  # pending
    ("lot-f", "alice", 40, -timedelta(seconds=1), None),  # expired, not swept
    ("lot-g", "bob", 30, None, HOUR),  # pending, no expiry
    ("lot-h", "bob", 20, 2 * HOUR, None),
]


def us(delta: timedelta) -> str:
    return str(to_us(START + delta))


OLD_FIELDS: dict[
    str, list[list[str | None]]
] = {  # what an earlier build kept once alice had paid 40 (taken from lot-a): written by hand
    "alice": [
        ["lot-f", "40", "40", us(-timedelta(seconds=1)), None, "c-lot-f", us(timedelta(0))],
        ["lot-a", "60", "100", us(HOUR), None, "c-lot-a", us(timedelta(0))],
        ["lot-b", "100", "100", us(HOUR), None, "c-lot-b", us(timedelta(0))],
        ["lot-e", "100", "100", us(5 * HOUR), us(2 * HOUR), "c-lot-e", us(timedelta(0))],
        ["lot-c", "100", "100", None, None, "c-lot-c", us(timedelta(0))],
    ],
    "bob": [
        ["lot-h", "20", "20", us(2 * HOUR), None, "c-lot-h", us(timedelta(0))],
        ["lot-g", "30", "30", None, us(HOUR), "c-lot-g", us(timedelta(0))],
    ],
}


def expected_lots(user: str) -> list[LotRecord]:
    def at(value: str | None) -> datetime | None:
        return None if value is None else from_us(value)

    out = []
    for lot_id, remaining, amount, expires_at, available_at, category, _ in OLD_FIELDS[user]:
        assert lot_id is not None and remaining is not None and amount is not None
        out.append(LotRecord(lot_id, user, int(amount), int(remaining), at(expires_at), at(available_at), category,
                             START))  # fmt: skip
    return out


async def test_open_moves_lots_from_the_layout_of_earlier_builds(
    redis_url: str, key_prefix: str, raw: aioredis.Redis
) -> None:
    clock = ManualClock(START)
    settings = Settings(storage_mode="redis", redis_url=redis_url, key_prefix=key_prefix, symbol="TARO", decimals=0,
                        initial_supply="1000", hold_sweep_interval=0)  # fmt: skip
    async with TokenBank(settings, clock=clock) as bank:  # the balances and journal an earlier build wrote
        store, keys = storage_of(bank), storage_of(bank).keys
        results = await store.apply([grant(*row) for row in GRANTS], atomic=True)
        assert [result.status for result in results] == [Status.OK] * len(GRANTS)
        await bank.transfer("alice", "shop", 40)
        before = await store.spendable_balances(["alice", "bob"], START)
    # the lots as an earlier build kept them, in place of this build's layout
    lot_ids = [row[0] for row in GRANTS]
    await raw.hdel(keys.lots, *lot_ids)
    await raw.delete(*(key for user in OLD_FIELDS for key in (keys.lot_order(user), keys.lot_avail(user))))
    await raw.hset(keys.lots, mapping={user: json.dumps(rows) for user, rows in OLD_FIELDS.items()})
    expiry_index = await raw.zrange(keys.lotexp, 0, -1, withscores=True)

    async with TokenBank(settings, clock=clock) as bank:
        store = storage_of(bank)
        assert sorted(await raw.hkeys(keys.lots)) == sorted(lot_ids)  # no account field is left
        assert await raw.zrange(keys.lot_order("alice"), 0, -1) == ["lot-f", "lot-a", "lot-b", "lot-e", "lot-c"]
        assert await raw.zrange(keys.lot_avail("alice"), 0, -1, withscores=True) == [("lot-e", to_us(START + 2 * HOUR))]
        assert await raw.zrange(keys.lot_order("bob"), 0, -1, withscores=True) == [
            ("lot-h", to_us(START + 2 * HOUR)), ("lot-g", float("inf")),
        ]  # fmt: skip
        assert await raw.zrange(keys.lotexp, 0, -1, withscores=True) == expiry_index
        for user in OLD_FIELDS:
            assert await store.get_lots(user) == expected_lots(user)
        assert await store.spendable_balances(["alice", "bob"], START) == before == {"alice": 260, "bob": 20}
        tx = await bank.transfer("alice", "shop", 170)  # lot-f is expired and lot-e pending: the others pay
        assert [(move.lot_id, int(move.amount)) for move in tx.lot_moves] == [
            ("lot-a", 60),
            ("lot-b", 100),
            ("lot-c", 10),
        ]
        clock.advance(3 * HOUR)  # lot-e and lot-g are available; lot-h expired
        assert await store.spendable_balances(["alice", "bob"], clock.now()) == {"alice": 190, "bob": 30}
        assert (await bank.verify()).ok
