"""The Lua scripts, loaded from ``lua/*.lua`` package files and called by SHA (EVALSHA, reloaded on NOSCRIPT).

The write scripts share ``decimal.lua`` (exact decimal-string arithmetic), ``lib.lua`` (keys, undo log, deferred
effects), ``lots.lua`` (credit lots) and
``ops.lua`` (one op, the semantics of ``tb_apply_one``); Redis has no ``require``, so the files are joined
here into one script text each. Each file starts with a header listing its KEYS, ARGV and reply.

``lua/status.lua`` is generated from :class:`tokenbank.status.Status` (the one source of the outcome
numbers; the write scripts read them as ``ST_<NAME>`` constants) and prepended to the scripts that answer with
a status. A test fails when it is out of date; regenerate it with::

    .venv/bin/python -m tokenbank.storage.redis.scripts
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from tokenbank.status import Status

_WRITE_PATH = ("status.lua", "decimal.lua", "lib.lua", "lots.lua", "ops.lua")
_PREPENDED = {
    "apply.lua": _WRITE_PATH,
    "create_token.lua": _WRITE_PATH,
    "update_token.lua": ("status.lua",),
    "set_controls.lua": ("status.lua", "decimal.lua"),
    "window_spent.lua": ("decimal.lua",),
    "spend_layout.lua": ("decimal.lua",),
    "spendable.lua": ("decimal.lua",),
}
_PER_TOKEN = ("status.lua", "decimal.lua", "lib.lua", "lots.lua", "ops.lua", "ledger_api.lua")
"""One token's ledger inside a script that touches several tokens: these files, wrapped in
``local function token_ledger(KEYS, ARGV) ... end`` (see lua/ledger_api.lua)."""
_MULTI_TOKEN = ("exchange.lua",)
_READ_ONLY = (
    "top_holders.lua", "rank.lua", "history.lua", "balance_at.lua", "feed.lua", "window_spent.lua", "spendable.lua",
    "account_lots.lua",
)  # fmt: skip

HYBRID_SCRIPTS = ("sync_lease", "sync_release", "raise_counter", "set_account", "set_supply")
"""Scripts of the hybrid sync worker and repair, run with :func:`run` on whichever client the caller holds (the
worker has a pool of its own). They carry no shebang: they run as they always have, as plain EVAL scripts."""


@cache
def source(name: str) -> str:
    """The text of one script file, with the shared files it needs prepended."""
    folder = resources.files("tokenbank.storage.redis").joinpath("lua")
    parts = [*_PREPENDED.get(name, ()), name]
    if name.removesuffix(".lua") in HYBRID_SCRIPTS:
        return "\n".join(folder.joinpath(part).read_text(encoding="utf-8") for part in parts)
    if name in _MULTI_TOKEN:
        ledger = [folder.joinpath(part).read_text(encoding="utf-8") for part in _PER_TOKEN]
        texts = [
            folder.joinpath("status.lua").read_text(encoding="utf-8"),
            "local function token_ledger(KEYS, ARGV)", *ledger, "end",
            folder.joinpath(name).read_text(encoding="utf-8"),
        ]  # fmt: skip
        return "\n".join(["#!lua", *texts])
    # A shebang makes Redis 7 refuse a write script up front when it is out of memory (instead of failing at
    # a write half-way through) and lets read scripts run on replicas.
    shebang = "#!lua flags=no-writes" if name in _READ_ONLY else "#!lua"
    return "\n".join([shebang, *(folder.joinpath(part).read_text(encoding="utf-8") for part in parts)])


def status_lua() -> str:
    """The text of ``lua/status.lua``: one ``local ST_<NAME> = <number>`` per :class:`Status` member."""
    lines = [
        "-- status.lua: GENERATED from tokenbank.status.Status; do not edit. Regenerate with",
        "--   .venv/bin/python -m tokenbank.storage.redis.scripts",
        '-- The outcome number of each op, as the write scripts answer it ({"s": status, ...}).',
        *(f"local ST_{status.name} = {status.value}" for status in Status),
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Scripts:
    """Every script registered on one client."""

    apply: AsyncScript
    exchange: AsyncScript
    create_token: AsyncScript
    update_token: AsyncScript
    set_controls: AsyncScript
    append_audit: AsyncScript
    top_holders: AsyncScript
    rank: AsyncScript
    window_spent: AsyncScript
    spend_layout: AsyncScript
    lots_layout: AsyncScript
    spendable: AsyncScript
    account_lots: AsyncScript
    history: AsyncScript
    balance_at: AsyncScript
    feed: AsyncScript
    events_record: AsyncScript
    chain_seal: AsyncScript
    chain_checkpoint: AsyncScript

    @classmethod
    def register(cls, client: Redis) -> Scripts:
        names = cls.__dataclass_fields__
        return cls(**{name: client.register_script(source(f"{name}.lua")) for name in names})

    async def load(self, client: Redis) -> None:
        """SCRIPT LOAD them all up front, so the first writes need no NOSCRIPT round trip."""
        for name in self.__dataclass_fields__:
            script: AsyncScript = getattr(self, name)
            script.sha = await client.script_load(script.script)


async def run(client: Redis, name: str, keys: list[str], args: list[str]) -> Any:
    """Run one of :data:`HYBRID_SCRIPTS` on ``client`` by SHA (EVALSHA; loaded on NOSCRIPT); its reply."""
    if name not in HYBRID_SCRIPTS:
        raise KeyError(f"no hybrid script {name!r}")
    return await client.register_script(source(f"{name}.lua"))(keys=keys, args=args)


if __name__ == "__main__":
    target = Path(str(resources.files("tokenbank.storage.redis").joinpath("lua", "status.lua")))
    target.write_text(status_lua(), encoding="utf-8")
    print(f"wrote {target}")
