"""Staking on every store: tokens locked until a date, then given back with a reward minted within the supply cap,
in one atomic write; early, unknown and repeated unstakes, and a stake's hold that nothing else can end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.backends import BoundBackend
from tests.support import history
from tokenbank import (
    AccountFrozenError,
    HoldStateError,
    InsufficientBalanceError,
    InvalidAmountError,
    InvalidRequestError,
    StakeLockedError,
    StakeNotFoundError,
    StakeStatus,
    SupplyCapExceededError,
    TokenBank,
    TokenBankError,
    TransactionType,
)
from tokenbank.staking import may_be_stake
from tokenbank.testing import ManualClock


async def _state(bank: TokenBank, user: str = "alice") -> tuple[Decimal, Decimal, Decimal]:
    return await bank.get_balance(user), await bank.get_held_balance(user), await bank.get_total_supply()


async def test_a_stake_is_locked_until_its_date_then_comes_back_with_its_reward(backend: BoundBackend) -> None:
    clock = ManualClock()
    async with TokenBank(backend.settings(initial_supply=1000, max_supply=2000), clock=clock) as bank:
        await bank.transfer("treasury", "alice", 100)
        stake = await bank.stake("alice", 60, until=clock.now() + timedelta(days=30), reward="2.50",
                                 metadata={"pool": "gold"}, reason="30-day pool")  # fmt: skip
        assert may_be_stake(stake.id) and stake.status is StakeStatus.STAKED
        assert (stake.user_id, stake.amount, stake.reward, stake.metadata) == (
            "alice",
            60,
            Decimal("2.50"),
            {"pool": "gold"},
        )
        assert await _state(bank) == (40, 60, 1000)
        assert await bank.get_stake(stake.id) == stake
        with pytest.raises(InsufficientBalanceError):
            await bank.transfer("alice", "bob", 41)  # the staked 60 are not spendable
        clock.advance(timedelta(days=30) - timedelta(microseconds=1))
        with pytest.raises(StakeLockedError) as locked:
            await bank.unstake(stake.id)
        assert locked.value.param == "stake_id" and locked.value.code == "stake_locked"
        assert await _state(bank) == (40, 60, 1000)
        clock.advance(timedelta(microseconds=1))  # exactly the unlock time
        released = await bank.unstake(stake.id, reason="pool ended")
        assert released.status is StakeStatus.RELEASED and not released.replayed
        assert await _state(bank) == (Decimal("102.50"), 0, Decimal("1002.50"))
        again = await bank.unstake(stake.id)  # a resend: answered, applied once
        assert again.replayed and again.status is StakeStatus.RELEASED
        assert await _state(bank) == (Decimal("102.50"), 0, Decimal("1002.50"))
        assert (await bank.get_stake(stake.id)).status is StakeStatus.RELEASED
        types = [tx.type for tx in await history(bank, "alice")]
        assert types[:3] == [TransactionType.MINT, TransactionType.VOID, TransactionType.HOLD]
        assert (await bank.verify()).ok


async def test_a_reward_beyond_the_max_supply_refuses_the_unstake_and_changes_nothing(backend: BoundBackend) -> None:
    clock = ManualClock()
    async with TokenBank(backend.settings(initial_supply=1000, max_supply=1005), clock=clock) as bank:
        await bank.transfer("treasury", "alice", 100)
        stake = await bank.stake("alice", 50, until=clock.now() + timedelta(hours=1), reward=6)
        clock.advance(3600)
        with pytest.raises(SupplyCapExceededError) as capped:
            await bank.unstake(stake.id)
        assert capped.value.param == "reward"
        assert await _state(bank) == (50, 50, 1000)
        assert (await bank.get_stake(stake.id)).status is StakeStatus.STAKED
        await bank.configure_token(max_supply=1006)
        await bank.unstake(stake.id)
        assert await _state(bank) == (106, 0, 1006)
        plain = await bank.stake("alice", 6, until=clock.now() + timedelta(seconds=1))  # no reward: no mint
        clock.advance(1)
        assert (await bank.unstake(plain.id)).reward == 0
        assert await _state(bank) == (106, 0, 1006)


async def test_nothing_but_unstake_ends_a_stake(backend: BoundBackend) -> None:
    clock = ManualClock()
    async with TokenBank(backend.settings(initial_supply=1000), clock=clock) as bank:
        await bank.transfer("treasury", "alice", 100)
        stake = await bank.stake("alice", 30, until=clock.now() + timedelta(days=1))
        for settle in (bank.void(stake.id), bank.capture(stake.id)):
            with pytest.raises(HoldStateError) as refused:
                await settle
            assert refused.value.param == "hold_id" and "unstake" in str(refused.value)
        clock.advance(timedelta(days=400))  # far past any ordinary hold's expiry
        assert await bank.expire_holds() == 0
        assert await _state(bank) == (70, 30, 1000)
        hold = await bank.hold("alice", "bob", 5, expires_in=60)  # an ordinary hold is none of that
        with pytest.raises(StakeNotFoundError):
            await bank.unstake(hold.id)
        await bank.void(hold.id)
        await bank.unstake(stake.id)
        assert await _state(bank) == (100, 0, 1000)


async def test_unknown_and_bad_stakes_are_typed_errors_that_change_nothing(backend: BoundBackend) -> None:
    clock = ManualClock()
    async with TokenBank(backend.settings(initial_supply=1000), clock=clock) as bank:
        await bank.transfer("treasury", "alice", 100)
        later = clock.now() + timedelta(days=1)
        for stake_id in ("00000000-0000-75ac-8000-000000000000", "not-a-stake", "x" * 64):
            with pytest.raises(StakeNotFoundError) as missing:
                await bank.unstake(stake_id)
            assert missing.value.param == "stake_id"
        with pytest.raises(InvalidRequestError):
            await bank.unstake("")
        bad: list[tuple[dict[str, object], type[TokenBankError], str]] = [
            ({"amount": 0}, InvalidAmountError, "amount"),
            ({"amount": 101}, InsufficientBalanceError, "amount"),
            ({"reward": "-1"}, InvalidAmountError, "reward"),
            ({"reward": 0.5}, InvalidAmountError, "reward"),
            ({"until": clock.now()}, InvalidRequestError, "until"),
            ({"until": datetime(2030, 1, 1)}, InvalidRequestError, "until"),  # naive
            ({"metadata": {"tokenbank.stake": 1}}, InvalidRequestError, "metadata"),
            ({"metadata": ["not", "a", "dict"]}, InvalidRequestError, "metadata"),
        ]
        for change, error, param in bad:
            args: dict[str, object] = {"amount": 10, "until": later, "reward": 1, **change}
            amount = args.pop("amount")
            with pytest.raises(error) as caught:
                await bank.stake("alice", amount, **args)  # type: ignore[arg-type]
            assert caught.value.param == param, change
        assert await _state(bank) == (100, 0, 1000)


async def test_a_stake_obeys_the_accounts_controls_and_replays_its_key(backend: BoundBackend) -> None:
    clock = ManualClock()
    async with TokenBank(backend.settings(initial_supply=1000), clock=clock) as bank:
        await bank.transfer("treasury", "alice", 100)
        until = clock.now() + timedelta(hours=1)
        await bank.freeze("alice", reason="review")
        with pytest.raises(AccountFrozenError):
            await bank.stake("alice", 10, until=until)
        await bank.unfreeze("alice")
        first = await bank.stake("alice", 10, until=until, reward=1, idempotency_key="stake-1")
        second = await bank.stake("alice", 10, until=until, reward=1, idempotency_key="stake-1")
        assert second.replayed and second.id == first.id
        assert await _state(bank) == (90, 10, 1000)
        clock.advance(3600)
        await bank.freeze("alice", debits=False, credits=True, reason="review")
        with pytest.raises(AccountFrozenError):  # the reward is a credit
            await bank.unstake(first.id)
        assert (await bank.get_stake(first.id)).status is StakeStatus.STAKED
        await bank.unfreeze("alice")
        await bank.unstake(first.id)
        assert await _state(bank) == (101, 0, 1001)


async def test_concurrent_unstakes_release_each_stake_once(backend: BoundBackend) -> None:
    clock = ManualClock()
    async with TokenBank(backend.settings(initial_supply=1000), clock=clock) as bank:
        await bank.transfer("treasury", "alice", 100)
        stakes = [await bank.stake("alice", 10, until=clock.now() + timedelta(minutes=1), reward=1) for _ in range(5)]
        clock.advance(60)
        results = await asyncio.gather(*(bank.unstake(s.id) for s in stakes for _ in range(8)))
        assert sum(not r.replayed for r in results) == 5
        assert await _state(bank) == (105, 0, 1005)
        assert (await bank.verify()).ok


def test_stake_ids_carry_their_marker() -> None:
    from tokenbank.ids import new_id
    from tokenbank.staking import new_stake_id

    assert all(may_be_stake(new_stake_id()) for _ in range(100))
    assert sum(may_be_stake(new_id()) for _ in range(1000)) < 5
    assert datetime.now(UTC).year < 9999
