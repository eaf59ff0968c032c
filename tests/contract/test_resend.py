"""A store call resent after its answer was lost (same op ids) is replayed, never applied twice."""

from __future__ import annotations

from decimal import Decimal

from tokenbank import TokenBank
from tokenbank.ids import new_id
from tokenbank.status import Status
from tokenbank.storage.base import OpKind, WriteOp


async def test_resending_the_same_ops_replays_them(bank: TokenBank) -> None:
    ops = [
        WriteOp(kind=OpKind.TRANSFER, tx_id=new_id(), from_user_id="treasury", to_user_id="alice", amount=250),
        WriteOp(kind=OpKind.TRANSFER, tx_id=new_id(), from_user_id="alice", to_user_id="bob", amount=100),
    ]
    first = await bank.storage.apply(ops)
    again = await bank.storage.apply(ops)
    assert [r.status for r in first] == [Status.OK, Status.OK]
    assert [r.status for r in again] == [Status.REPLAYED, Status.REPLAYED]
    assert [r.transactions[0].id for r in again] == [op.tx_id for op in ops]
    assert await bank.get_balances(["alice", "bob"]) == {"alice": Decimal("1.50"), "bob": Decimal("1.00")}
