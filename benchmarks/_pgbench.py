"""pgbench running the same tb_apply call from a custom script: the floor that no Python client pays for."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from _pg_clients import WireFormat, Workload
from _pg_env import TOKEN, TREASURY, Ledger

# A UUIDv7-like id (48-bit millisecond time prefix, like tokenbank.ids.new_id), so the unique index on
# tb_transactions.id sees the same append-mostly insert pattern as with the Python clients.
_TIME_ORDERED_ID = (
    "(SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' || substr(gen_random_uuid()::text, 16)"
    " FROM lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') AS h)"
)


def available() -> bool:
    return shutil.which("pgbench") is not None


def script(workload: Workload, wire: WireFormat) -> str:
    """The pgbench script: random accounts via ``\\set``, one tb_apply call with the op JSON built in SQL from
    the library's op (its constant fields as a literal, then id, sender and receiver)."""
    n = workload.accounts
    if workload.hot_source:
        lines = [f"\\set b random(1, {n})"]
        sender = f"'{TREASURY}'"
    else:
        lines = [
            f"\\set a random(1, {n})",
            f"\\set b random(1, {n - 1})",
            "\\set b :b + case when :b >= :a then 1 else 0 end",
        ]
        sender = "'u' || :a"
    constant = {k: v for k, v in wire.op_template.items() if k not in ("id", "from", "to")}
    literal = json.dumps(constant, separators=(",", ":")).replace("'", "''")
    op = f"'{literal}'::jsonb || jsonb_build_object('id', {_TIME_ORDERED_ID}, 'from', {sender}, 'to', 'u' || :b)"
    lines.append(f"SELECT tb_apply('{TOKEN}', jsonb_build_array({op}), false);")
    return "\n".join(lines) + "\n"


async def run(ledger: Ledger, wire: WireFormat, workload: Workload, clients: int, seconds: int) -> float:
    """Transfers per second that ``pgbench -n -c clients -j 2 -T seconds -f script`` reports."""
    with tempfile.TemporaryDirectory(prefix="tb-pgbench-") as tmp:
        path = Path(tmp) / f"{workload.name}.sql"
        path.write_text(script(workload, wire))
        env = {**os.environ, "PGOPTIONS": f"-c search_path={ledger.schema} -c jit=off", "PGAPPNAME": "tokenbank-bench"}
        args = ["pgbench", "-n", "-f", str(path), "-c", str(clients), "-j", str(min(2, clients)), "-T", str(seconds)]
        proc = await asyncio.create_subprocess_exec(
            *args, ledger.dsn, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        try:
            output, _ = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    text = output.decode(errors="replace")
    failed = re.search(r"number of failed transactions: (\d+)", text)
    match = re.search(r"^tps = ([\d.]+)", text, re.MULTILINE)
    if proc.returncode != 0 or match is None or (failed and int(failed.group(1))):
        raise RuntimeError(f"pgbench failed (exit {proc.returncode}):\n{text[-2000:]}")
    return float(match.group(1))
