"""What the hash chain costs, measured, beside the alternative it replaced:

    .venv/bin/python benchmarks/chain_costs.py [--quick] [--json out.json]

1. SHA-256 of one journal entry's canonical encoding (a transfer with small metadata, ~330 bytes): Python's
   hashlib (what every sealer and the SQLite writer run) vs the same hash written in Redis 7's Lua with its
   ``bit`` library (what hashing inside the Redis write script would cost per transaction), checked equal;
2. sealing throughput after the fact: entries hashed per second by PostgreSQL's sealer and by Redis's sealer
   (N transfers written first with ``transfer_many``, then one ``bank.chain.seal()`` timed);
3. checkpoint + proof time over those N entries.

Uses the test services (PostgreSQL 127.0.0.1:5432 database ``test``, Redis 127.0.0.1:6379) under a unique
schema / key prefix, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from _common import write_json
from tokenbank import Settings, TokenBank, TransferRequest
from tokenbank.chain import GENESIS, EntryFields, SigningKey, encode_entry, verify_proof

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"

LUA_SHA256 = r"""
local band, bor, bxor, bnot, rshift, lshift, ror, tobit = bit.band, bit.bor, bit.bxor, bit.bnot, bit.rshift,
    bit.lshift, bit.ror, bit.tobit
local K = {
 0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,0xd807aa98,0x12835b01,
 0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,
 0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,
 0x06ca6351,0x14292967,0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,
 0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,0x19a4c116,0x1e376c08,
 0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,
 0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2}
local function sha256(msg)
    local ml = #msg
    msg = msg .. '\128' .. string.rep('\0', (55 - ml) % 64) .. '\0\0\0\0'
        .. string.char(band(rshift(ml * 8, 24), 255), band(rshift(ml * 8, 16), 255), band(rshift(ml * 8, 8), 255),
                       band(ml * 8, 255))
    local H = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}
    local w = {}
    for chunk = 1, #msg, 64 do
        for i = 0, 15 do
            local a, b, c, d = string.byte(msg, chunk + i * 4, chunk + i * 4 + 3)
            w[i] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
        end
        for i = 16, 63 do
            local x, y = w[i - 15], w[i - 2]
            w[i] = tobit(w[i - 16] + bxor(ror(x, 7), ror(x, 18), rshift(x, 3)) + w[i - 7]
                         + bxor(ror(y, 17), ror(y, 19), rshift(y, 10)))
        end
        local a, b, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
        for i = 0, 63 do
            local t1 = tobit(h + bxor(ror(e, 6), ror(e, 11), ror(e, 25)) + bxor(band(e, f), band(bnot(e), g))
                             + K[i + 1] + w[i])
            local t2 = tobit(bxor(ror(a, 2), ror(a, 13), ror(a, 22)) + bxor(band(a, b), band(a, c), band(b, c)))
            h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
        end
        H[1], H[2], H[3], H[4] = tobit(H[1] + a), tobit(H[2] + b), tobit(H[3] + c), tobit(H[4] + d)
        H[5], H[6], H[7], H[8] = tobit(H[5] + e), tobit(H[6] + f), tobit(H[7] + g), tobit(H[8] + h)
    end
    local out = {}
    for i = 1, 8 do out[i] = bit.tohex(H[i]) end
    return table.concat(out)
end
local digest
for _ = 1, tonumber(ARGV[2]) do digest = sha256(ARGV[1]) end
return digest
"""


def sample_entry() -> bytes:
    entry = EntryFields(
        token="BENCH", seq=123456, id="01936f7e-8a4b-7c2d-9e1f-0a1b2c3d4e5f", type="transfer",
        from_user_id="000000012345", to_user_id="000000067890", amount=1250,
        timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), metadata={"order": 42, "sku": "A-17"},
        idempotency_key="order-42", reason=None, hold_id=None, reverses_id=None,
    )  # fmt: skip
    return encode_entry(GENESIS, entry)


async def hash_costs(quick: bool) -> dict[str, Any]:
    message = sample_entry()
    n = 20_000 if quick else 200_000
    started = time.perf_counter()
    for _ in range(n):
        hashlib.sha256(message).hexdigest()
    python_us = (time.perf_counter() - started) / n * 1e6
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        runs = 200 if quick else 2000
        expected = hashlib.sha256(message).hexdigest()
        assert (await client.eval(LUA_SHA256, 0, message, 1)).decode() == expected, "Lua SHA-256 is wrong"
        started = time.perf_counter()
        await client.eval(LUA_SHA256, 0, message, runs)
        lua_us = (time.perf_counter() - started) / runs * 1e6
    finally:
        await client.aclose()
    return {"entry_bytes": len(message), "python_hashlib_us": python_us, "redis_lua_sha256_us": lua_us}


async def seal_costs(mode: str, n: int, key: Path) -> dict[str, Any]:
    schema, prefix = "chainbench_" + secrets.token_hex(3), "chb" + secrets.token_hex(3)
    settings = Settings(
        storage_mode=mode, database_url=PG_URL, database_schema=schema, redis_url=REDIS_URL, key_prefix=prefix,
        symbol="BENCH", initial_supply=10**9, signing_key=str(key), enable_synchronization=False,
    )  # fmt: skip
    try:
        async with TokenBank(settings) as bank:
            for start in range(0, n, 1000):
                requests = [TransferRequest("treasury", f"u{i % 500}", 1) for i in range(start, min(n, start + 1000))]
                results = await bank.transfer_many(requests)
            started = time.perf_counter()
            await bank.chain.seal()
            seal = time.perf_counter() - started
            started = time.perf_counter()
            await bank.chain.checkpoint()
            checkpoint = time.perf_counter() - started
            started = time.perf_counter()
            proof = await bank.chain.proof(results[-1].transaction.id)  # type: ignore[union-attr]
            proof_s = time.perf_counter() - started
            assert verify_proof(proof, SigningKey.from_file(key).public_pem())
        return {"entries": n + 1, "seal_per_s": (n + 1) / seal, "checkpoint_s": checkpoint, "proof_s": proof_s}
    finally:
        conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(match="{" + prefix + ":*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 entries per store, fewer hash rounds")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    n = 2_000 if args.quick else 50_000
    results: dict[str, Any] = {"hash": await hash_costs(args.quick)}
    h = results["hash"]
    ratio = h["redis_lua_sha256_us"] / h["python_hashlib_us"]
    print(f"SHA-256 of one entry ({h['entry_bytes']} bytes): Python hashlib {h['python_hashlib_us']:.2f} us, "
          f"Redis Lua {h['redis_lua_sha256_us']:.1f} us ({ratio:.0f}x)")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        key = Path(folder) / "k.pem"
        SigningKey.generate().write(key)
        for mode in ("sql", "redis"):
            r = results[mode] = await seal_costs(mode, n, key)
            print(f"{mode}: sealed {r['entries']:,} entries at {r['seal_per_s']:,.0f}/s; checkpoint "
                  f"{r['checkpoint_s'] * 1000:.0f} ms, proof {r['proof_s'] * 1000:.0f} ms")  # fmt: skip
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    asyncio.run(main())
