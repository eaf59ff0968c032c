"""SPEC §4 invariants checked inside the SQL store, each as one aggregate query."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tokenbank.storage.base import CheckRecord
from tokenbank.storage.sql.schema import accounts, holds, tokens, transactions

_SAMPLE = 5


async def run_checks(conn: AsyncConnection, token: str) -> list[CheckRecord]:
    total = await conn.scalar(sa.select(tokens.c.total_supply).where(tokens.c.symbol == token))
    if total is None:
        return [CheckRecord("token initialized", False, f"no token {token!r}")]
    total = int(total)
    checks = [CheckRecord("token initialized", True)]

    held_and_balances = int(
        await conn.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(accounts.c.balance + accounts.c.held), 0)).where(
                accounts.c.token == token
            )
        )
        or 0
    )
    checks.append(
        CheckRecord(
            "balances + held == total supply",
            held_and_balances == total,
            f"balances + held = {held_and_balances}, total supply = {total}",
        )
    )

    by_type = dict(
        (
            await conn.execute(
                sa.select(transactions.c.type, sa.func.sum(transactions.c.amount))
                .where(transactions.c.token == token)
                .group_by(transactions.c.type)
            )
        ).all()
    )
    minted, burned = int(by_type.get("mint") or 0), int(by_type.get("burn") or 0)
    checks.append(
        CheckRecord("total supply == minted - burned", total == minted - burned, f"minted {minted}, burned {burned}")
    )

    negative = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(accounts)
        .where(accounts.c.token == token, sa.or_(accounts.c.balance < 0, accounts.c.held < 0))
    )
    checks.append(CheckRecord("no negative balances", not negative, f"{negative or 0} negative accounts"))

    pending = (
        sa.select(holds.c.from_user_id.label("user_id"), sa.func.sum(holds.c.amount).label("pending"))
        .where(holds.c.token == token, holds.c.status == "pending")
        .group_by(holds.c.from_user_id)
        .subquery()
    )
    held_mismatch = (
        await conn.execute(
            sa.select(accounts.c.user_id)
            .select_from(accounts.outerjoin(pending, pending.c.user_id == accounts.c.user_id))
            .where(accounts.c.token == token, accounts.c.held != sa.func.coalesce(pending.c.pending, 0))
            .limit(_SAMPLE)
        )
    ).all()
    checks.append(
        CheckRecord(
            "held == pending holds", not held_mismatch, ", ".join(r.user_id for r in held_mismatch) or "all match"
        )
    )

    checks.append(await _ledger_matches_balances(conn, token))
    return checks


async def _ledger_matches_balances(conn: AsyncConnection, token: str) -> CheckRecord:
    """Replay the journal per account (credits - debits, holds moved to held) and compare with balances."""
    t = transactions
    debit_types = ("transfer", "burn", "hold", "reversal")
    credit_types = ("transfer", "mint", "capture", "reversal")
    deltas = sa.union_all(
        sa.select(t.c.from_user_id.label("user_id"), (-t.c.amount).label("delta")).where(
            t.c.token == token, t.c.type.in_(debit_types)
        ),
        sa.select(t.c.to_user_id, t.c.amount).where(t.c.token == token, t.c.type.in_(credit_types)),
        sa.select(t.c.from_user_id, t.c.amount).where(t.c.token == token, t.c.type == "void"),
    ).subquery()
    derived = (
        sa.select(deltas.c.user_id, sa.func.sum(deltas.c.delta).label("balance")).group_by(deltas.c.user_id).subquery()
    )
    mismatched = (
        await conn.execute(
            sa.select(accounts.c.user_id)
            .select_from(accounts.outerjoin(derived, derived.c.user_id == accounts.c.user_id))
            .where(accounts.c.token == token, accounts.c.balance != sa.func.coalesce(derived.c.balance, 0))
            .limit(_SAMPLE)
        )
    ).all()
    return CheckRecord(
        "balances == replayed ledger", not mismatched, ", ".join(r.user_id for r in mismatched) or "all match"
    )
