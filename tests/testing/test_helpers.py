"""tokenbank.testing without pytest's plugin: the manual clock, memory banks, the event recorder."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tests.conftest import SETTINGS_ENV
from tokenbank import ConfigurationError, InvalidAccountError, InvalidRequestError, TokenBank
from tokenbank.clock import SYSTEM_CLOCK, read_clock, stamps_writes
from tokenbank.testing import MEMORY_DATABASE_URL, EventRecorder, ManualClock, isolated_settings, memory_bank

START = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(START)
    assert clock.now() == clock.now() == START
    assert clock.advance(90) == START + timedelta(seconds=90)
    assert clock.advance(Decimal("0.5")) == START + timedelta(seconds=90.5)
    assert clock.advance(timedelta(days=1)) == START + timedelta(days=1, seconds=90.5)
    assert clock.advance(0) == clock.now()
    back = START - timedelta(hours=1)
    assert clock.set(back) == back == clock.now()
    tokyo = datetime(2030, 1, 1, 9, tzinfo=timezone(timedelta(hours=9)))
    assert clock.set(tokyo).tzinfo is UTC and clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
    assert stamps_writes(clock) and not stamps_writes(SYSTEM_CLOCK)


def test_manual_clock_starts_at_the_real_time_by_default() -> None:
    before = datetime.now(UTC)
    clock = ManualClock()
    assert before <= clock.now() <= datetime.now(UTC)
    assert "ManualClock(" in repr(clock)


@pytest.mark.parametrize("step", [-1, timedelta(seconds=-1), float("nan"), float("inf"), "5", True, None])
def test_manual_clock_refuses_bad_steps(step: object) -> None:
    clock = ManualClock(START)
    with pytest.raises(InvalidRequestError):
        clock.advance(step)  # type: ignore[arg-type]
    assert clock.now() == START


def test_manual_clock_refuses_naive_times_and_overflow() -> None:
    with pytest.raises(InvalidRequestError, match="timezone-aware"):
        ManualClock(datetime(2030, 1, 1))
    clock = ManualClock(START)
    with pytest.raises(InvalidRequestError, match="timezone-aware"):
        clock.set(datetime(2030, 1, 1))
    with pytest.raises(InvalidRequestError, match="representable"):
        clock.advance(timedelta(days=999_999_999))
    assert clock.now() == START


def test_a_clock_answering_naive_time_is_a_configuration_error() -> None:
    class Naive:
        def now(self) -> datetime:
            return datetime(2030, 1, 1)

    with pytest.raises(ConfigurationError, match="timezone-aware"):
        read_clock(Naive())


async def test_a_bad_clock_refuses_writes_and_changes_nothing() -> None:
    class Naive:
        def now(self) -> datetime:
            return datetime(2030, 1, 1)

    bank = TokenBank(isolated_settings(initial_supply=10), clock=Naive())
    with pytest.raises(ConfigurationError):
        await bank.open()  # the initial mint is a write stamped with the clock
    await bank.close()


async def test_memory_banks_are_private_and_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://nobody@192.0.2.1/none")
    monkeypatch.setenv("TOKEN_SYMBOL", "ENVSYM")
    async with memory_bank(initial_supply=100) as one, memory_bank() as two:
        assert one.settings.database_url == MEMORY_DATABASE_URL
        info = await one.get_token_info()
        assert (info.symbol, info.total_supply) == ("TEST", 100)
        await one.transfer("treasury", "alice", 1)
        assert await two.get_balance("alice") == 0  # its own database
        assert await two.get_total_supply() == 1_000_000
        assert one.settings.hold_sweep_interval == 0
        assert one.clock is SYSTEM_CLOCK


async def test_memory_bank_refuses_bad_settings() -> None:
    with pytest.raises(ConfigurationError, match="TOKEN_DECIMALS"):
        async with memory_bank(decimals=99):
            pass


async def test_recorder_waits_for_updates() -> None:
    async with memory_bank() as bank, EventRecorder(bank, "alice") as events:
        await events.watch("bob")

        async def later() -> None:
            await asyncio.sleep(0.05)
            await bank.transfer("treasury", "alice", 3)
            await bank.transfer("alice", "bob", 1)

        task = asyncio.ensure_future(later())
        got = await events.wait_for(3, timeout=5)
        await task
        assert [(u.user_id, u.change) for u in got] == [("alice", 3), ("alice", -1), ("bob", 1)]
        assert [u.balance for u in events.of("alice")] == [3, 2]
        assert len(await events.wait_for(1, user_id="bob")) == 1
        events.clear()
        assert events.updates == []
        with pytest.raises(TimeoutError, match="0 of 1 balance updates of 'carol'"):
            await events.wait_for(1, user_id="carol", timeout=0.05)


async def test_recorder_refuses_bad_arguments() -> None:
    async with memory_bank() as bank, EventRecorder(bank) as events:
        with pytest.raises(InvalidRequestError):
            await events.wait_for(-1)
        with pytest.raises(InvalidRequestError):
            await events.wait_for(1, timeout=0)
        with pytest.raises(InvalidAccountError):
            await events.watch("")
    async with memory_bank(enable_notifications=False) as quiet:
        with pytest.raises(ConfigurationError, match="TOKEN_ENABLE_NOTIFICATIONS"):
            await EventRecorder(quiet).watch("alice")


async def test_recorder_stops_recording_after_close() -> None:
    async with memory_bank() as bank:
        async with EventRecorder(bank, "alice") as events:
            await bank.transfer("treasury", "alice", 1)
            await events.wait_for(1)
        await bank.transfer("treasury", "alice", 1)
        await asyncio.sleep(0)
        assert len(events.updates) == 1


def test_importing_the_helpers_needs_no_pytest(tmp_path: object) -> None:
    code = (
        "import sys; sys.modules['pytest'] = None; sys.modules['pytest_asyncio'] = None\n"
        "import asyncio, tokenbank.testing as t\n"
        "async def main():\n"
        "    async with t.memory_bank(initial_supply=5) as bank:\n"
        "        assert await bank.get_balance('treasury') == 5\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


def test_the_blocking_bank_takes_a_clock() -> None:
    from tokenbank import blocking

    clock = ManualClock(START)
    with blocking.TokenBank(isolated_settings(), clock=clock) as bank:
        hold = bank.hold("treasury", "bob", 1, expires_in=30)
        assert hold.expires_at == START + timedelta(seconds=30)
        clock.advance(30)  # from this thread; the bank's loop runs on its own
        assert bank.expire_holds() == 1
        assert bank.get_balance("treasury") == 1_000_000
