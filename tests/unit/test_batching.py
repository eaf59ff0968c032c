"""WriteBatcher: coalescing concurrent writes without changing any caller's outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tokenbank.status import Status
from tokenbank.storage.base import OpKind, OpResult, WriteOp
from tokenbank.storage.batching import WriteBatcher


def op(n: int) -> WriteOp:
    return WriteOp(kind=OpKind.TRANSFER, tx_id=f"tx{n}", from_user_id="a", to_user_id="b", amount=n)


class Store:
    """A tiny in-memory apply: amounts > 100 are refused, amount 13 makes the whole call fail."""

    def __init__(self, delay: float = 0.01) -> None:
        self.calls: list[list[int]] = []
        self.delay = delay

    async def apply(self, ops: Sequence[WriteOp], atomic: bool) -> list[OpResult]:
        amounts = [o.amount or 0 for o in ops]
        self.calls.append(amounts)
        await asyncio.sleep(self.delay)
        if 13 in amounts:
            raise RuntimeError("poisoned call")
        return [OpResult(Status.OK if a <= 100 else Status.INSUFFICIENT_BALANCE) for a in amounts]


async def test_a_lone_call_goes_out_at_once() -> None:
    store = Store(delay=0)
    batcher = WriteBatcher(store.apply)
    [result] = await batcher.apply([op(1)], False)
    assert result.status is Status.OK
    assert store.calls == [[1]]


async def test_concurrent_calls_share_one_store_call_and_keep_their_own_outcomes() -> None:
    store = Store()
    batcher = WriteBatcher(store.apply, max_in_flight=1)
    amounts = [1, 200, 3, 400, 5, 6]
    results = await asyncio.gather(*(batcher.apply([op(a)], False) for a in amounts))
    assert [r[0].status for r in results] == [Status.OK if a <= 100 else Status.INSUFFICIENT_BALANCE for a in amounts]
    # The first call went alone; what queued behind it left in order, in batches of at most half of the calls
    # outstanding (6, then 2 plus the 3 in flight).
    assert store.calls == [[1], [200, 3, 400], [5, 6]]
    assert batcher.stats.largest == 3


async def test_multi_op_calls_are_kept_whole_and_in_order() -> None:
    store = Store()
    batcher = WriteBatcher(store.apply, max_in_flight=1)
    first, second, third = await asyncio.gather(
        batcher.apply([op(1)], False), batcher.apply([op(2), op(300)], False), batcher.apply([op(4)], False)
    )
    assert [r.status for r in second] == [Status.OK, Status.INSUFFICIENT_BALANCE]
    assert len(first) == 1 and len(third) == 1
    assert store.calls == [[1], [2, 300], [4]]


async def test_a_failing_merged_call_only_fails_the_culprit() -> None:
    store = Store()
    batcher = WriteBatcher(store.apply, max_in_flight=1)
    outcomes = await asyncio.gather(*(batcher.apply([op(a)], False) for a in (1, 2, 13, 4)), return_exceptions=True)
    assert isinstance(outcomes[2], RuntimeError)
    assert [o[0].status for i, o in enumerate(outcomes) if i != 2] == [Status.OK] * 3  # type: ignore[index]
    # The merged call [2, 13] failed as a whole and was retried caller by caller.
    assert store.calls == [[1], [2, 13], [2], [13], [4]]


async def test_batches_respect_max_ops() -> None:
    store = Store()
    batcher = WriteBatcher(store.apply, max_in_flight=1, max_ops=2)
    await asyncio.gather(*(batcher.apply([op(a)], False) for a in range(1, 6)))
    assert store.calls == [[1], [2, 3], [4, 5]]


async def test_atomic_calls_bypass_the_queue() -> None:
    store = Store(delay=0)
    batcher = WriteBatcher(store.apply)
    await batcher.apply([op(1), op(2)], True)
    assert store.calls == [[1, 2]]
    assert batcher.stats.calls == 0


@pytest.mark.parametrize("in_flight", [1, 2, 4])
async def test_in_flight_limit_is_respected(in_flight: int) -> None:
    running = 0
    peak = 0

    async def apply(ops: Sequence[WriteOp], atomic: bool) -> list[OpResult]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.005)
        running -= 1
        return [OpResult(Status.OK) for _ in ops]

    batcher = WriteBatcher(apply, max_in_flight=in_flight)
    await asyncio.gather(*(batcher.apply([op(i)], False) for i in range(50)))
    assert min(in_flight, 2) <= peak <= in_flight


async def test_callers_arriving_together_while_a_batch_runs_join_one_batch() -> None:
    """A free slot does not send the first arrival alone: the launch waits for the end of the event-loop pass."""
    store = Store(delay=0.02)
    batcher = WriteBatcher(store.apply, max_in_flight=2)
    slow = asyncio.create_task(batcher.apply([op(1)], False))
    await asyncio.sleep(0.005)  # op 1 is in flight alone; one slot is free
    await asyncio.gather(*(batcher.apply([op(a)], False) for a in range(2, 12)))
    await slow
    # 11 outstanding: half of them (6) leave together, the rest once a slot frees.
    assert store.calls == [[1], [2, 3, 4, 5, 6, 7], [8, 9, 10, 11]]


async def test_a_convoy_splits_into_groups_that_alternate() -> None:
    """Under steady load no batch takes more than half of the outstanding calls, so while the store works on
    one group this process handles the other (a single convoy would leave each idle while the other works)."""
    store = Store(delay=0.002)
    batcher = WriteBatcher(store.apply, max_in_flight=1)

    async def worker(base: int) -> None:
        for i in range(10):
            await batcher.apply([op(base + i)], False)

    await asyncio.gather(*(worker(100 * w) for w in range(20)))
    sizes = [len(call) for call in store.calls]
    assert sum(sizes) == 200
    assert max(sizes) <= 10
    assert len(sizes) <= 2 * 200 // 10 + 3  # about two alternating groups of 10, not batches of one


async def test_the_next_batch_leaves_before_the_finished_one_is_decoded() -> None:
    events: list[str] = []

    async def send(ops: Sequence[WriteOp], atomic: bool) -> list[int]:
        amounts = [o.amount or 0 for o in ops]
        events.append(f"send {amounts}")
        await asyncio.sleep(0.01)
        return amounts

    def decode(raw: list[int]) -> list[OpResult]:
        events.append(f"decode {raw}")
        return [OpResult(Status.OK) for _ in raw]

    batcher = WriteBatcher(send, decode, max_in_flight=1)
    await asyncio.gather(*(batcher.apply([op(a)], False) for a in (1, 2, 3)))
    assert events == ["send [1]", "send [2, 3]", "decode [1]", "decode [2, 3]"]
