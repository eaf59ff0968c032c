"""Balance monitors on every backend: one event per crossing, again only after crossing back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.feed_support import settle
from tests.webhooks.receiver import running_receiver, signature_is_valid
from tokenbank import TokenBank
from tokenbank.errors import InvalidAccountError, InvalidAmountError, InvalidRequestError, MonitorNotFoundError


async def test_a_monitor_fires_once_per_crossing(bank: TokenBank) -> None:
    with running_receiver() as receiver:
        hook = await bank.webhooks.add(receiver.url, events=["balance.threshold"])
        watch = await bank.monitors.add("alice", below=10, above="100")
        everyone = await bank.monitors.add("*", below="0.50")
        assert (watch.below, watch.above) == (Decimal("10.00"), Decimal("100.00"))
        steps = [
            ("treasury", "alice", 50),  # 0 -> 50: from below to inside, no event
            ("alice", "bob", 45),  # 5: below -> event
            ("alice", "bob", 1),  # 4: still below
            ("treasury", "alice", 2),  # 6: still below
            ("treasury", "alice", 20),  # 26: inside again (no event)
            ("alice", "bob", 20),  # 6: below again -> event
            ("treasury", "alice", 200),  # 206: above -> event
        ]
        txs = []
        for number, (src, dst, amount) in enumerate(steps):
            txs.append(await bank.transfer(src, dst, amount))
            if number % 2:  # some steps in a pass of their own: the zones must survive between passes
                await settle(bank)
                await bank.webhooks.run_once()
        await settle(bank)
        await bank.webhooks.run_once()
        fired = await bank.monitors.events()
        mine = [e for e in fired if e.monitor_id == watch.id]
        assert [(e.direction, e.balance, e.transaction_id) for e in mine] == [
            ("below", Decimal("5.00"), txs[1].id),
            ("below", Decimal("6.00"), txs[5].id),
            ("above", Decimal("206.00"), txs[6].id),
        ]
        assert mine[0].threshold == Decimal("10.00") and mine[2].threshold == Decimal("100.00")
        assert [e.monitor_id for e in fired if e.monitor_id == everyone.id] == []  # nobody went below 0.50
        # The same events went to the webhook subscribed to balance.threshold, in order, signed.
        bodies = [r.event for r in receiver.acknowledged]
        assert [b["type"] for b in bodies] == ["balance.threshold"] * 3
        assert [b["data"]["transaction_id"] for b in bodies] == [txs[1].id, txs[5].id, txs[6].id]
        assert all(signature_is_valid(hook.secret, r.headers, r.body) for r in receiver.acknowledged)
        # A second pass fires nothing new; paging by id.
        await bank.webhooks.run_once()
        assert len(await bank.monitors.events()) == 3
        assert [e.id for e in await bank.monitors.events(after_id=mine[0].id)] == [mine[1].id, mine[2].id]
        await bank.transfer("alice", "bob", "205.60")  # 0.40: below for both monitors
        await settle(bank)
        await bank.webhooks.run_once()
        latest = await bank.monitors.events(after_id=mine[2].id)
        assert sorted(e.monitor_id for e in latest) == sorted([watch.id, everyone.id])


async def test_monitors_are_listed_removed_and_checked(bank: TokenBank) -> None:
    one = await bank.monitors.add("carol", above=5)
    assert [m.id for m in await bank.monitors.list()] == [one.id]
    await bank.monitors.remove(one.id)
    assert await bank.monitors.list() == []
    with pytest.raises(MonitorNotFoundError):
        await bank.monitors.remove(one.id)
    with pytest.raises(InvalidRequestError, match="threshold"):
        await bank.monitors.add("carol")
    with pytest.raises(InvalidRequestError, match="below must not be greater"):
        await bank.monitors.add("carol", below=10, above=5)
    with pytest.raises(InvalidAmountError):
        await bank.monitors.add("carol", below=0.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidAccountError):
        await bank.monitors.add("", below=1)
    assert await bank.monitors.list() == []
