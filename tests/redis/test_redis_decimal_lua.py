"""The Lua decimal-string helpers (no doubles anywhere) against Python ints, on random values to 2**63-1."""

from __future__ import annotations

import random
from importlib import resources

import pytest
import redis.asyncio as aioredis

pytestmark = pytest.mark.redis

_PROBE = """
local out = {}
for i = 1, #ARGV, 2 do
    local a, b = ARGV[i], ARGV[i + 1]
    out[#out + 1] = tostring(cmp(a, b))
    out[#out + 1] = add(a, b)
    out[#out + 1] = cmp(a, b) >= 0 and sub(a, b) or sub(b, a)
end
return out
"""


def _values(rng: random.Random) -> list[int]:
    edges = [0, 1, 9, 10, 99, 100, 2**53 - 1, 2**53, 2**53 + 1, 2**62, 2**63 - 2, 2**63 - 1]
    return edges + [rng.randrange(0, 2**63) >> rng.randrange(0, 63) for _ in range(200)]


async def test_cmp_add_sub_are_exact(redis_url: str) -> None:
    lib = resources.files("tokenbank.storage.redis").joinpath("lua", "decimal.lua").read_text()
    rng = random.Random(7)
    values = _values(rng)
    pairs = [(rng.choice(values), rng.choice(values)) for _ in range(400)] + [(v, v) for v in values[:12]]
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        args = [str(x) for pair in pairs for x in pair]
        reply = await client.eval(lib + _PROBE, 0, *args)  # no keys: the helpers only
    finally:
        await client.aclose()
    for i, (a, b) in enumerate(pairs):
        got = reply[3 * i : 3 * i + 3]
        assert got == [str((a > b) - (a < b)), str(a + b), str(abs(a - b))], (a, b)
