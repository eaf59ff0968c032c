"""One of several OS processes writing the same token at once (run by test_many_processes.py).

``python -m tests.multiprocess.writer SETTINGS_JSON WORKER_NUMBER OPERATIONS`` opens a bank with the given settings
(its in-app hold sweeper runs every 50 ms, racing the other processes' sweepers), then mixes transfers whose
idempotency keys every process shares (same key -> same payload, so each must apply once), holds that expire
within a fraction of a second, captures and voids racing the sweepers, and explicit ``expire_holds()`` calls. It
prints one JSON line: the hold ids it made, refusal codes counted, and any error that is not a typed refusal.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sys
from collections import Counter
from datetime import timedelta
from typing import Any

from tokenbank import Settings, TokenBank, TokenBankError

ACCOUNTS = [f"u{n}" for n in range(8)]
SHARED_KEYS = 120
"""Transfers use idempotency keys 0..SHARED_KEYS-1, drawn by every process."""


def keyed_transfer(key: int) -> tuple[str, str, int]:
    """The one payload of shared key ``key``: every process sends exactly this under it."""
    digest = hashlib.sha256(str(key).encode()).digest()
    source = ACCOUNTS[digest[0] % len(ACCOUNTS)]
    target = ACCOUNTS[(digest[0] + 1 + digest[1] % (len(ACCOUNTS) - 1)) % len(ACCOUNTS)]
    return source, target, 1 + digest[2] % 5


async def run(settings: Settings, worker: int, operations: int) -> dict[str, Any]:
    rng = random.Random(worker)
    refusals: Counter[str] = Counter()
    unexpected: list[str] = []
    holds: list[str] = []
    async with TokenBank(settings) as bank:
        for _ in range(operations):
            action = rng.random()
            try:
                if action < 0.5:
                    key = rng.randrange(SHARED_KEYS)
                    source, target, amount = keyed_transfer(key)
                    await bank.transfer(source, target, amount, idempotency_key=f"shared-{key}")
                elif action < 0.8:
                    source, target = rng.sample(ACCOUNTS, 2)
                    hold = await bank.hold(source, target, rng.randint(1, 3), expires_in=timedelta(milliseconds=150))
                    holds.append(hold.id)
                    if rng.random() < 0.3:
                        await asyncio.sleep(rng.uniform(0.1, 0.2))  # land near the expiry, racing the sweepers
                        await (bank.capture(hold.id) if rng.random() < 0.5 else bank.void(hold.id))
                elif action < 0.9:
                    await bank.expire_holds()
                else:
                    source, target = rng.sample(ACCOUNTS, 2)
                    await bank.transfer(source, target, rng.randint(1, 4))
            except TokenBankError as error:
                refusals[error.code] += 1
            except Exception as error:  # anything untyped is a failure of the test
                unexpected.append(f"{type(error).__name__}: {error}")
    return {"worker": worker, "holds": holds, "refusals": dict(refusals), "unexpected": unexpected}


def main() -> None:
    options, worker, operations = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(asyncio.run(run(Settings.load(**options), worker, operations))))


if __name__ == "__main__":
    main()
