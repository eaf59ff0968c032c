"""Every Lua script and every write of Redis's key layout lives in ``storage/redis/``.

Scripts are ``.lua`` files registered in ``storage/redis/scripts.py`` (each with its KEYS/ARGV/Returns header);
code elsewhere (the hybrid sync, rebuild, repair) calls functions of ``storage/redis/layout.py`` and friends.
"""

from __future__ import annotations

import re
from pathlib import Path

import tokenbank
from tokenbank.storage.redis.scripts import HYBRID_SCRIPTS, Scripts

SRC = Path(tokenbank.__file__).parent
REDIS = SRC / "storage" / "redis"
# Inline Lua, script calls, and commands that write keys, as redis-py spells them.
OUTSIDE = re.compile(
    r"redis\.call\(|\.eval(sha)?\(|\.register_script\(|"
    r"\.(hset|hsetnx|hdel|zadd|zrem|zremrangebyrank|set|delete|unlink|incr|incrby|hincrby|xadd)\("
)


def test_no_lua_or_layout_writes_outside_storage_redis() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if REDIS in path.parents:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if "redis.call(" in code or (OUTSIDE.search(code) and ("client" in code or "pipe." in code)):
                found.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert found == []


def test_every_lua_file_is_registered_and_has_its_header() -> None:
    # joined into the write scripts, not run alone
    libraries = {"decimal.lua", "lib.lua", "lots.lua", "ops.lua", "status.lua", "ledger_api.lua"}
    registered = {f"{name}.lua" for name in (*Scripts.__dataclass_fields__, *HYBRID_SCRIPTS)}
    files = {path.name for path in (REDIS / "lua").glob("*.lua")}
    assert files - libraries == registered
    for name in registered:
        header = (REDIS / "lua" / name).read_text().split("\n\n")[0]
        for part in ("-- KEYS", "-- ARGV", "-- Returns"):
            assert part in header, f"{name}: header lacks {part}"
