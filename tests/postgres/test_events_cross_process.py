"""Balance events cross processes: a subscriber here sees a transfer made by another process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from tests.backends import BoundBackend, Scope, by_name, params
from tokenbank import BalanceUpdate, TokenBank

WRITER = """
import asyncio, json, os
from tokenbank import Settings, TokenBank

async def main() -> None:
    async with TokenBank(Settings(**json.loads(os.environ["TB_SETTINGS"]))) as bank:
        await bank.transfer("treasury", "alice", "12.5")

asyncio.run(main())
"""


@pytest.fixture(params=params(by_name("postgres", "redis")))
def cross_backend(request: pytest.FixtureRequest, tmp_path: object, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    return request.param.bind(Scope(tmp_path))  # type: ignore[arg-type, no-any-return]


async def test_a_subscriber_sees_a_transfer_made_by_another_process(cross_backend: BoundBackend) -> None:
    settings = cross_backend.settings(initial_supply=100, hold_sweep_interval=0)
    received: asyncio.Queue[BalanceUpdate] = asyncio.Queue()
    async with TokenBank(settings) as bank:
        await bank.balances.subscribe_to_balance_updates("alice", received.put_nowait)
        env = {**os.environ, "TB_SETTINGS": json.dumps(settings.model_dump(mode="json"))}
        writer = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", WRITER], env=env, capture_output=True, text=True, timeout=60
        )
        assert writer.returncode == 0, writer.stderr
        update = await asyncio.wait_for(received.get(), timeout=10)
    assert update.user_id == "alice"
    assert str(update.balance) == "12.50"
    assert str(update.change) == "12.50"
    assert update.transaction_type.value == "transfer"
