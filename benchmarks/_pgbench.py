"""pgbench scripts: floors that no Python client pays for.

* :func:`tb_apply_script`: the same tb_apply call tokenbank sends, on tokenbank's schema;
* :func:`one_statement_script`: the one-statement transfer (a CTE that debits if enough, credits and journals)
  on the plain tables of :mod:`_pg_env`;
* :func:`set_based_script`: 1,000 random transfers applied by one set-based statement on the plain tables.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from _pg_clients import WireFormat, Workload
from _pg_env import PLAIN_TREASURY, TOKEN, TREASURY, Ledger

# A UUIDv7-like id (48-bit millisecond time prefix, like tokenbank.ids.new_id), so the unique index on
# tb_transactions.id sees the same append-mostly insert pattern as with the Python clients.
_TIME_ORDERED_ID = (
    "(SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' || substr(gen_random_uuid()::text, 16)"
    " FROM lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') AS h)"
)


def available() -> bool:
    return shutil.which("pgbench") is not None


def _draw(workload: Workload) -> list[str]:
    """``\\set`` lines drawing the receiver ``:b`` and, unless hot-source, a sender ``:a`` that is never ``:b``
    (the same draw as :meth:`Workload.pick`)."""
    n = workload.accounts
    if workload.hot_source:
        return [f"\\set b random(1, {n})"]
    return [
        f"\\set a random(1, {n})",
        f"\\set b random(1, {n - 1})",
        "\\set b :b + case when :b >= :a then 1 else 0 end",
    ]


def tb_apply_script(workload: Workload, wire: WireFormat) -> str:
    """One tb_apply call with the op JSON built in SQL from the library's op (its constant fields as a literal,
    then id, sender and receiver)."""
    sender = f"'{TREASURY}'" if workload.hot_source else "'u' || :a"
    constant = {k: v for k, v in wire.op_template.items() if k not in ("id", "from", "to")}
    literal = json.dumps(constant, separators=(",", ":")).replace("'", "''")
    op = f"'{literal}'::jsonb || jsonb_build_object('id', {_TIME_ORDERED_ID}, 'from', {sender}, 'to', 'u' || :b)"
    return "\n".join([*_draw(workload), f"SELECT tb_apply('{TOKEN}', jsonb_build_array({op}), false);"]) + "\n"


def one_statement_script(workload: Workload) -> str:
    """The one-statement transfer of amount 1; hot-source debits the fixed treasury row. Inserts one journal row
    per transfer that moved (none if the debit found too little, which the funding rules out)."""
    a = str(PLAIN_TREASURY) if workload.hot_source else ":a"
    statement = (
        f"WITH d AS (UPDATE bench_accounts SET balance = balance - 1 WHERE id = {a} AND balance >= 1 RETURNING id),"
        " c AS (UPDATE bench_accounts SET balance = balance + 1 WHERE id = :b AND EXISTS (SELECT 1 FROM d)"
        " RETURNING id)"
        f" INSERT INTO bench_journal (from_id, to_id, amount, created_at) SELECT {a}, :b, 1, now() FROM d, c;"
    )
    return "\n".join([*_draw(workload), statement]) + "\n"


def set_based_script(accounts: int, size: int) -> str:
    """``size`` random uniform transfers of amount 1 in one statement: draw the pairs, sum each account's net
    delta, apply it with one guarded UPDATE ... FROM, insert ``size`` journal rows. Journals nothing if the guard
    skipped any account (then the plain-table check after the run reports the missing rows)."""
    n = accounts
    return f"""WITH pairs AS MATERIALIZED (
  SELECT a, b + (b >= a)::int AS b
  FROM (SELECT 1 + floor(random() * {n})::int AS a, 1 + floor(random() * {n - 1})::int AS b
        FROM generate_series(1, {size})) AS drawn
), delta AS (
  SELECT id, sum(d) AS d
  FROM (SELECT a AS id, -1 AS d FROM pairs UNION ALL SELECT b, 1 FROM pairs) AS moves GROUP BY id
), moved AS (
  UPDATE bench_accounts AS acc SET balance = acc.balance + delta.d FROM delta
  WHERE acc.id = delta.id AND acc.balance + delta.d >= 0 RETURNING acc.id
)
INSERT INTO bench_journal (from_id, to_id, amount, created_at)
SELECT a, b, 1, now() FROM pairs WHERE (SELECT count(*) FROM moved) = (SELECT count(*) FROM delta);
"""


@dataclass(frozen=True, slots=True)
class Result:
    tps: float  # statements (pgbench transactions) per second
    transactions: int


async def run(ledger: Ledger, script: str, clients: int, seconds: int) -> Result:
    """What ``pgbench -n -c clients -j 2 -T seconds -f script`` reports; raises if it failed."""
    with tempfile.TemporaryDirectory(prefix="tb-pgbench-") as tmp:
        path = Path(tmp) / "script.sql"
        path.write_text(script)
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
    return _parse(proc.returncode, output.decode(errors="replace"))


def _parse(returncode: int | None, text: str) -> Result:
    failed = re.search(r"number of failed transactions: (\d+)", text)
    done = re.search(r"number of transactions actually processed: (\d+)", text)
    tps = re.search(r"^tps = ([\d.]+)", text, re.MULTILINE)
    if returncode != 0 or tps is None or done is None or (failed and int(failed.group(1))):
        raise RuntimeError(f"pgbench failed (exit {returncode}):\n{text[-2000:]}")
    return Result(float(tps.group(1)), int(done.group(1)))
