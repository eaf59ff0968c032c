"""The write wire format, byte for byte: what tb_apply and the Lua scripts read, and their answers decoded."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tokenbank.status import Status
from tokenbank.storage import wire
from tokenbank.storage.base import OpKind, WriteOp

T = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
OPS = [
    WriteOp(OpKind.TRANSFER, "t1", "a", "b", 5, "k", "h", '{"x":"é"}', "why"),
    WriteOp(
        OpKind.HOLD, "t2", "a", "b", 7, hold_id="h1", expires_at=T + timedelta(hours=1), timestamp=T, audit_action="x"
    ),
    WriteOp(OpKind.CAPTURE, "t3", hold_id="h1"),
    WriteOp(OpKind.MINT, "t4", to_user_id="ü", amount=10**30),
]


@pytest.fixture(autouse=True)
def fixed_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "new_id", lambda: "N")


def test_sql_ops_are_iso_timed_ascii_json_with_the_notify_channel() -> None:
    assert wire.SQL.ops(OPS, "chan") == (
        '[{"kind":"transfer","id":"t1","from":"a","to":"b","amount":"5","key":"k","hash":"h",'
        '"meta":"{\\"x\\":\\"\\u00e9\\"}","reason":"why","notify":"chan"},'
        '{"kind":"hold","id":"t2","from":"a","to":"b","amount":"7","hold_id":"h1",'
        '"expires_at":"2024-05-06T08:08:09.123456+00:00","ts":"2024-05-06T07:08:09.123456+00:00","audit":"x",'
        '"notify":"chan"},'
        '{"kind":"capture","id":"t3","hold_id":"h1","notify":"chan","id2":"N"},'
        '{"kind":"mint","id":"t4","to":"\\u00fc","amount":"1000000000000000000000000000000","notify":"chan"}]'
    )


def test_lua_ops_are_microsecond_timed_utf8_json() -> None:
    assert wire.LUA.ops(OPS) == (
        '[{"kind":"transfer","id":"t1","from":"a","to":"b","amount":"5","key":"k","hash":"h",'
        '"meta":"{\\"x\\":\\"é\\"}","reason":"why"},'
        '{"kind":"hold","id":"t2","from":"a","to":"b","amount":"7","hold_id":"h1",'
        '"expires_at":"1714982889123456","ts":"1714979289123456","audit":"x"},'
        '{"kind":"capture","id":"t3","hold_id":"h1","id2":"N"},'
        '{"kind":"mint","id":"t4","to":"ü","amount":"1000000000000000000000000000000"}]'
    )


def test_answers_decode_in_either_spelling() -> None:
    tx = {"seq": 3, "id": "t2", "type": "hold", "from_user_id": "a", "to_user_id": "b", "amount": "7"}
    hold = {"id": "h1", "from_user_id": "a", "to_user_id": "b", "amount": "7", "captured_amount": "0"}
    sql = [{"s": 0, "t": [{**tx, "created_at": T.isoformat()}], "h": {**hold, "status": "pending",
            "expires_at": "2024-05-06T08:08:09.123456", "created_at": T.isoformat(), "metadata": None}}]  # fmt: skip
    lua = [{"s": 0, "t": [{**tx, "created_at": "1714979289123456"}], "h": {**hold, "status": "pending",
            "expires_at": "1714982889123456", "created_at": "1714979289123456"}}]  # fmt: skip
    decoded = [wire.SQL.results(json.dumps(sql)), wire.SQL.results(sql), wire.LUA.results(json.dumps(lua))]
    assert decoded[0] == decoded[1] == decoded[2]
    [result] = decoded[0]
    assert result.status is Status.OK
    assert result.transactions[0].timestamp == T and result.transactions[0].amount == 7
    assert result.hold is not None and result.hold.expires_at == T + timedelta(hours=1)
    assert wire.LUA.results(json.dumps([{"s": Status.INSUFFICIENT_BALANCE}]))[0].transactions == ()
