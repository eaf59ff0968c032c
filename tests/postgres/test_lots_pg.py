"""Credit lots in PostgreSQL's write functions (0013_lots.sql), at the Storage level: grants, the spend order of
every debit, holds and voids giving back, reversals, expiry, and the hybrid sync's copy (tb_replicate_batch).

Ops are WriteOps built by hand and stamped by the bank's ManualClock (``ts``); lots and flags are read with SQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from tests.backends import BoundBackend, Scope, by_name, params, unique
from tokenbank import TokenBank
from tokenbank.ids import fingerprint, new_id
from tokenbank.status import Status
from tokenbank.storage.base import OpKind, OpResult, WriteOp
from tokenbank.storage.wire import lot_moves, to_us
from tokenbank.testing import ManualClock

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture(params=params(by_name("postgres")))
def pg_backend(request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> BoundBackend:
    return request.param.bind(Scope(tmp_path))  # type: ignore[no-any-return]


class Ledger:
    """A bank on PostgreSQL with a manual clock, and the SQL reads these tests check."""

    def __init__(self, bank: TokenBank, clock: ManualClock) -> None:
        self.bank = bank
        self.clock = clock
        self.token = bank.settings.symbol

    def op(self, kind: OpKind, *, stamped: bool = True, **fields: Any) -> WriteOp:
        fields.setdefault("tx_id", new_id())
        return WriteOp(kind=kind, timestamp=self.clock.now() if stamped else None, **fields)

    def grant(
        self, to: str, amount: int, *, funder: str | None = None, expires_in: timedelta | None = None,
        available_in: timedelta | None = None, lot_id: str | None = None, **fields: Any,
    ) -> WriteOp:  # fmt: skip
        now = self.clock.now()
        return self.op(
            OpKind.GRANT, to_user_id=to, from_user_id=funder, amount=amount, tx_id=lot_id or new_id(),
            expires_at=None if expires_in is None else now + expires_in,
            available_at=None if available_in is None else now + available_in, **fields,
        )  # fmt: skip

    def transfer(self, sender: str, receiver: str, amount: int, **fields: Any) -> WriteOp:
        return self.op(OpKind.TRANSFER, from_user_id=sender, to_user_id=receiver, amount=amount, **fields)

    async def apply(self, *ops: WriteOp, atomic: bool = False) -> list[OpResult]:
        return await self.bank.storage.apply(list(ops), atomic=atomic)

    async def one(self, op: WriteOp) -> OpResult:
        (result,) = await self.apply(op)
        return result

    async def sql(self, fn: Callable[[Connection], Any]) -> Any:
        run_sync: Callable[..., Any] = self.bank.storage.run_sync  # type: ignore[attr-defined]
        return await run_sync(fn, write=True)

    async def rows(self, query: str, **params: Any) -> list[Any]:
        return await self.sql(lambda conn: list(conn.execute(sa.text(query), {"token": self.token, **params})))  # type: ignore[no-any-return]

    async def remaining(self) -> dict[str, int]:
        """Every lot's remaining, by lot id."""
        return {r.id: r.remaining for r in await self.rows("SELECT id, remaining FROM tb_lots WHERE token = :token")}

    async def balances(self) -> dict[str, tuple[int, int, bool]]:
        """(balance, held, has_lots) by account; a refused op may leave a new account's row at zero, as before lots,
        so rows at zero without lots are left out."""
        rows = await self.rows("SELECT user_id, balance, held, has_lots FROM tb_accounts WHERE token = :token")
        found = {r.user_id: (r.balance, r.held, r.has_lots) for r in rows}
        return {user: row for user, row in found.items() if row != (0, 0, False)}

    async def balance(self, user: str) -> int:
        return (await self.balances()).get(user, (0, 0, False))[0]

    async def supply(self) -> int:
        (row,) = await self.rows("SELECT total_supply FROM tb_tokens WHERE symbol = :token")
        return int(row.total_supply)

    async def journal(self) -> int:
        (row,) = await self.rows("SELECT count(*) AS n FROM tb_transactions WHERE token = :token")
        return int(row.n)


@pytest.fixture
async def ledger(pg_backend: BoundBackend) -> AsyncIterator[Ledger]:
    clock = ManualClock(START)
    settings = pg_backend.settings(initial_supply=1000, max_supply=2000, decimals=0)
    async with TokenBank(settings, clock=clock) as bank:
        yield Ledger(bank, clock)


def lot_ids(count: int) -> list[str]:
    """Lot ids in byte order (UUIDv7-shaped, lowercase), so a test can name which one sorts first."""
    return sorted(new_id() for _ in range(count))


async def test_a_minted_grant_creates_a_lot_adds_to_supply_and_flags_the_owner(ledger: Ledger) -> None:
    op = ledger.grant("alice", 100, expires_in=HOUR, available_in=timedelta(minutes=5), category="promo",
                      reason="welcome", audit_action="grant")  # fmt: skip
    result = await ledger.one(op)
    assert result.status is Status.OK
    (tx,) = result.transactions
    assert (tx.type, tx.from_user_id, tx.to_user_id, tx.amount) == ("grant", None, "alice", 100)
    assert tx.to_balance_after == 100
    assert tx.lots == ()
    assert (tx.expires_at, tx.available_at, tx.category) == (START + HOUR, START + timedelta(minutes=5), "promo")
    (lot,) = await ledger.rows("SELECT * FROM tb_lots WHERE token = :token")
    assert (lot.id, lot.user_id, lot.amount, lot.remaining, lot.category) == (op.tx_id, "alice", 100, 100, "promo")
    assert (lot.expires_at, lot.available_at, lot.created_at) == (START + HOUR, START + timedelta(minutes=5), START)
    (stored,) = await ledger.rows("SELECT lots, expires_at, category FROM tb_transactions WHERE id = :id", id=op.tx_id)
    assert (stored.lots, stored.expires_at, stored.category) == (None, START + HOUR, "promo")
    assert await ledger.supply() == 1100
    assert (await ledger.balances())["alice"] == (100, 0, True)
    audit = await ledger.rows("SELECT details FROM tb_audit WHERE token = :token AND action = 'grant'")
    assert json.loads(audit[0].details)["transaction_id"] == op.tx_id


async def test_a_minted_grant_past_the_max_supply_is_refused_like_a_mint(ledger: Ledger) -> None:
    before = (await ledger.balances(), await ledger.journal())
    assert (await ledger.one(ledger.grant("alice", 1001))).status is Status.SUPPLY_CAP_EXCEEDED
    assert (await ledger.balances(), await ledger.journal()) == before
    assert await ledger.remaining() == {}
    assert (await ledger.one(ledger.grant("alice", 1000))).status is Status.OK
    assert await ledger.supply() == 2000


async def test_a_funded_grant_debits_its_funder_and_takes_the_funders_own_lots(ledger: Ledger) -> None:
    result = await ledger.one(ledger.grant("bob", 300, funder="treasury"))
    (tx,) = result.transactions
    assert (tx.from_user_id, tx.from_balance_after, tx.to_balance_after, tx.lots) == ("treasury", 700, 300, ())
    assert await ledger.supply() == 1000
    balances = await ledger.balances()
    assert balances["treasury"] == (700, 0, False) and balances["bob"] == (300, 0, True)
    # bob funds a grant from his own lot: the grant records the funder's moves
    result = await ledger.one(ledger.grant("carol", 120, funder="bob", expires_in=HOUR))
    (tx,) = result.transactions
    remaining = await ledger.remaining()
    (bob_lot,) = [lot_id for lot_id in remaining if lot_id != tx.id]
    assert tx.lots == ((bob_lot, 120),)
    assert remaining == {bob_lot: 180, tx.id: 120}


async def test_a_refused_funded_grant_leaves_everything_unchanged(ledger: Ledger) -> None:
    await ledger.apply(ledger.grant("bob", 50, expires_in=HOUR), ledger.transfer("treasury", "bob", 10))
    before = (await ledger.balances(), await ledger.remaining(), await ledger.journal(), await ledger.supply())
    result = await ledger.one(ledger.grant("carol", 61, funder="bob"))
    assert result.status is Status.INSUFFICIENT_BALANCE and result.transactions == ()
    after = (await ledger.balances(), await ledger.remaining(), await ledger.journal(), await ledger.supply())
    assert after == before


async def test_debits_take_lots_soonest_expiry_first_then_no_expiry_then_plain(ledger: Ledger) -> None:
    a, b, c, d, e, f = lot_ids(6)
    await ledger.apply(
        ledger.transfer("treasury", "alice", 10),
        ledger.grant("alice", 5, lot_id=a, expires_in=3 * HOUR),
        ledger.grant("alice", 5, lot_id=d, expires_in=HOUR),  # same expiry as b; d's id sorts after b's
        ledger.grant("alice", 5, lot_id=b, expires_in=HOUR),
        ledger.grant("alice", 5, lot_id=c),  # never expires
        ledger.grant("alice", 5, lot_id=e, available_in=2 * HOUR),  # pending: locked
        ledger.grant("alice", 5, lot_id=f, expires_in=2 * HOUR),
    )
    assert await ledger.balance("alice") == 40
    result = await ledger.one(ledger.transfer("alice", "bob", 22))
    (tx,) = result.transactions
    assert tx.lots == ((b, 5), (d, 5), (f, 5), (a, 5), (c, 2))
    assert await ledger.remaining() == {a: 0, b: 0, c: 3, d: 0, e: 5, f: 0}
    # 18 left, 5 of it locked in the pending lot: 13 spendable
    assert (await ledger.one(ledger.transfer("alice", "bob", 14))).status is Status.INSUFFICIENT_BALANCE
    result = await ledger.one(ledger.transfer("alice", "bob", 13))
    assert result.transactions[0].lots == ((c, 3),)
    assert result.transactions[0].from_balance_after == 5
    (row,) = await ledger.rows("SELECT lots FROM tb_transactions WHERE id = :id", id=tx.id)
    assert json.loads(row.lots) == [[b, "5"], [d, "5"], [f, "5"], [a, "5"], [c, "2"]]


async def test_pending_and_expired_lots_are_not_spendable(ledger: Ledger) -> None:
    pending, expiring = lot_ids(2)
    await ledger.apply(
        ledger.grant("alice", 50, lot_id=pending, available_in=HOUR, expires_in=3 * HOUR),
        ledger.grant("alice", 30, lot_id=expiring, expires_in=2 * HOUR),
    )
    assert (await ledger.one(ledger.transfer("alice", "bob", 31))).status is Status.INSUFFICIENT_BALANCE
    burn = ledger.op(OpKind.BURN, from_user_id="alice", amount=31)
    assert (await ledger.one(burn)).status is Status.INSUFFICIENT_BALANCE
    hold = ledger.op(OpKind.HOLD, from_user_id="alice", to_user_id="bob", amount=31, hold_id=new_id(),
                     expires_at=START + HOUR)  # fmt: skip
    assert (await ledger.one(hold)).status is Status.INSUFFICIENT_BALANCE
    ledger.clock.advance(HOUR)  # the pending lot is available
    result = await ledger.one(ledger.transfer("alice", "bob", 40))
    assert result.transactions[0].lots == ((expiring, 30), (pending, 10))
    ledger.clock.advance(HOUR)  # 2h: the expiring lot is empty anyway; put something in another that expires
    await ledger.one(ledger.grant("alice", 20, expires_in=timedelta(minutes=30)))
    ledger.clock.advance(HOUR)  # 3h: both remaining lots have expired: 60 in the balance, none spendable
    assert await ledger.balance("alice") == 60
    assert (await ledger.one(ledger.transfer("alice", "bob", 1))).status is Status.INSUFFICIENT_BALANCE


async def test_the_plain_balance_pays_once_lots_are_spent_and_accounts_without_lots_move_no_lot(ledger: Ledger) -> None:
    lot = new_id()
    await ledger.apply(ledger.transfer("treasury", "alice", 100), ledger.grant("alice", 10, lot_id=lot))
    first, second = await ledger.apply(ledger.transfer("alice", "bob", 15), ledger.transfer("alice", "bob", 50))
    assert first.transactions[0].lots == ((lot, 10),)
    assert second.transactions[0].lots == () and second.transactions[0].from_balance_after == 45
    (row,) = await ledger.rows("SELECT lots FROM tb_transactions WHERE id = :id", id=second.transactions[0].id)
    assert row.lots is None
    plain = await ledger.one(ledger.transfer("treasury", "carol", 5))
    assert plain.transactions[0].lots == ()
    assert (await ledger.balances())["carol"] == (5, 0, False)
    assert (await ledger.one(ledger.transfer("alice", "bob", 46))).status is Status.INSUFFICIENT_BALANCE


async def test_the_set_based_path_takes_lots_as_the_op_by_op_path_does(ledger: Ledger) -> None:
    """Unstamped plain transfers run set-based (tb_apply_transfers, whose "now" is the database's clock); stamped
    ones op by op. Lots whose state is the same at both moments: both paths must agree, op by op."""
    real = datetime.now(UTC)
    x, z, pending, expired = new_id(), new_id(), new_id(), new_id()
    await ledger.apply(
        ledger.transfer("treasury", "bob", 100), ledger.transfer("treasury", "carol", 100),
        ledger.grant("alice", 30, lot_id=x), ledger.grant("dave", 5),
        ledger.op(OpKind.GRANT, tx_id=z, to_user_id="alice", amount=5, expires_at=real + timedelta(days=30)),
        ledger.op(OpKind.GRANT, tx_id=pending, to_user_id="alice", amount=10, available_at=real + timedelta(days=1)),
        ledger.op(OpKind.GRANT, tx_id=expired, to_user_id="alice", amount=10, expires_at=START - HOUR),
    )  # fmt: skip

    def probe(ops: list[WriteOp], *, atomic: bool = False, function: str = "tb_apply_transfers") -> Any:
        """The function's answer for ``ops``, rolled back."""

        def work(conn: Connection) -> Any:
            conn.exec_driver_sql("SAVEPOINT probe")
            raw = conn.scalar(sa.text(f"SELECT {function}(:token, CAST(:ops AS jsonb), :atomic)"),
                              {"token": ledger.token, "ops": json.dumps([_wire(op) for op in ops]),
                               "atomic": atomic})  # fmt: skip
            conn.exec_driver_sql("ROLLBACK TO SAVEPOINT probe")
            return json.loads(raw) if isinstance(raw, str) else raw

        return ledger.sql(work)

    def batch(*, stamped: bool) -> list[WriteOp]:
        return [
            ledger.transfer("bob", "carol", 10, stamped=stamped),
            ledger.transfer("alice", "bob", 20, stamped=stamped),
            ledger.transfer("carol", "alice", 5, stamped=stamped),
            ledger.transfer("alice", "carol", 12, stamped=stamped),
            ledger.transfer("alice", "bob", 10, stamped=stamped),  # 28 left, 20 of it locked
            ledger.transfer("carol", "dave", 1, stamped=stamped),  # dave has lots but only receives
        ]

    def moves(answer: list[Any]) -> list[Any]:
        return [lot_moves(item["t"][0]["lots"]) if item["s"] == 0 else item["s"] for item in answer]

    expected = [(), ((z, 5), (x, 15)), (), ((x, 12),), Status.INSUFFICIENT_BALANCE, ()]
    assert moves(await probe(batch(stamped=True), function="tb_apply")) == expected  # op by op
    assert moves(await probe(batch(stamped=False))) == expected  # set-based
    failed = await probe(batch(stamped=False), atomic=True)
    assert [item["s"] for item in failed] == [14, 14, 14, 14, Status.INSUFFICIENT_BALANCE, 14]
    before = (await ledger.balances(), await ledger.remaining())
    (aborted, *_) = await ledger.apply(*batch(stamped=False), atomic=True)
    assert aborted.status is Status.BATCH_ABORTED
    assert (await ledger.balances(), await ledger.remaining()) == before

    results = await ledger.apply(*batch(stamped=False))
    assert [r.transactions[0].lots if r.status.ok else r.status for r in results] == expected
    (row,) = await ledger.rows("SELECT lots FROM tb_transactions WHERE id = :id", id=results[1].transactions[0].id)
    assert json.loads(row.lots) == [[z, "5"], [x, "15"]]
    assert await ledger.remaining() == {**before[1], x: 3, z: 0}
    after = await ledger.balances()
    assert {u: after[u][0] - before[0][u][0] for u in ("alice", "bob", "carol")} == {
        "alice": -27, "bob": 10, "carol": 16}  # fmt: skip


def _wire(op: WriteOp) -> dict[str, str]:
    from tokenbank.storage.wire import SQL

    return SQL.op(op)


async def _two_lots(ledger: Ledger) -> tuple[str, str]:
    first, second = lot_ids(2)
    await ledger.apply(
        ledger.grant("alice", 5, lot_id=first, expires_in=HOUR),
        ledger.grant("alice", 5, lot_id=second, expires_in=2 * HOUR),
        ledger.transfer("treasury", "alice", 10),
    )
    return first, second


def _hold(ledger: Ledger, amount: int) -> WriteOp:
    return ledger.op(OpKind.HOLD, from_user_id="alice", to_user_id="shop", amount=amount, hold_id=new_id(),
                     expires_at=ledger.clock.now() + 3 * HOUR)  # fmt: skip


def _hold_id(result: OpResult) -> str:
    assert result.hold is not None
    return result.hold.id


async def test_a_hold_keeps_its_moves_and_a_void_gives_them_back_to_the_same_lots(ledger: Ledger) -> None:
    first, second = await _two_lots(ledger)
    hold = _hold(ledger, 8)
    result = await ledger.one(hold)
    assert result.transactions[0].lots == ((first, 5), (second, 3))
    (row,) = await ledger.rows("SELECT lots FROM tb_holds WHERE id = :id", id=hold.hold_id)
    assert json.loads(row.lots) == [[first, "5"], [second, "3"]]
    assert await ledger.remaining() == {first: 0, second: 2}
    ledger.clock.advance(90 * 60)  # the first lot has expired meanwhile: it takes its units back all the same
    void = await ledger.one(ledger.op(OpKind.VOID, hold_id=hold.hold_id, reason="changed my mind"))
    (tx,) = void.transactions
    assert (tx.type, tx.amount, tx.lots) == ("void", 8, ((second, -3), (first, -5)))
    assert await ledger.remaining() == {first: 5, second: 5}
    assert (await ledger.balances())["alice"] == (20, 0, True)


async def test_a_partial_capture_spends_the_first_lots_and_releases_the_rest_last_first(ledger: Ledger) -> None:
    first, second = await _two_lots(ledger)
    hold = _hold(ledger, 8)
    await ledger.one(hold)
    result = await ledger.one(ledger.op(OpKind.CAPTURE, hold_id=hold.hold_id, amount=4))
    capture, release = result.transactions
    assert (capture.type, capture.amount, capture.lots) == ("capture", 4, ())
    assert (release.type, release.amount, release.lots) == ("void", 4, ((second, -3), (first, -1)))
    assert await ledger.remaining() == {first: 1, second: 5}
    balances = await ledger.balances()
    assert balances["alice"] == (16, 0, True) and balances["shop"][0] == 4
    # a hold bigger than the lots: the release gives back to the lots first (last taken first), then plain
    hold = _hold(ledger, 10)
    taken = (await ledger.one(hold)).transactions[0].lots
    assert taken == ((first, 1), (second, 5))
    result = await ledger.one(ledger.op(OpKind.CAPTURE, hold_id=hold.hold_id, amount=3))
    assert result.transactions[1].amount == 7
    assert result.transactions[1].lots == ((second, -5), (first, -1))
    assert await ledger.remaining() == {first: 1, second: 5}
    result = await ledger.one(ledger.op(OpKind.CAPTURE, hold_id=_hold_id(await ledger.one(_hold(ledger, 9))), amount=8))
    assert result.transactions[1].lots == ((second, -1),)  # took first 1, second 5, plain 3: 1 released
    assert await ledger.remaining() == {first: 0, second: 1}


async def test_a_reversal_debits_the_receivers_lots_and_gives_back_to_the_senders(ledger: Ledger) -> None:
    first, second = await _two_lots(ledger)
    bobs = new_id()
    await ledger.one(ledger.grant("bob", 10, lot_id=bobs))
    transfer = await ledger.one(ledger.transfer("alice", "bob", 7))
    assert transfer.transactions[0].lots == ((first, 5), (second, 2))
    reversal = ledger.op(OpKind.REVERSE, reverses_id=transfer.transactions[0].id, reason="refund")
    result = await ledger.one(reversal)
    (tx,) = result.transactions
    assert (tx.type, tx.from_user_id, tx.to_user_id, tx.amount) == ("reversal", "bob", "alice", 7)
    assert tx.lots == ((bobs, 7), (first, -5), (second, -2))
    assert await ledger.remaining() == {first: 5, second: 5, bobs: 3}
    balances = await ledger.balances()
    assert balances["alice"][0] == 20 and balances["bob"][0] == 10


async def test_expire_moves_what_is_left_to_breakage_once(ledger: Ledger) -> None:
    lot = new_id()
    await ledger.one(ledger.grant("alice", 10, lot_id=lot, expires_in=HOUR))
    await ledger.one(ledger.transfer("alice", "bob", 3))

    def expire(owner: str = "alice") -> WriteOp:
        return ledger.op(OpKind.EXPIRE, lot_id=lot, from_user_id=owner, to_user_id="breakage")

    early = await ledger.one(expire())
    assert (early.status, early.transactions) == (Status.OK, ())
    ledger.clock.advance(2 * HOUR)
    wrong_owner = await ledger.one(expire("bob"))
    assert (wrong_owner.status, wrong_owner.transactions) == (Status.OK, ())
    missing = await ledger.one(ledger.op(OpKind.EXPIRE, lot_id=new_id(), from_user_id="alice", to_user_id="breakage"))
    assert missing.transactions == ()
    journal = await ledger.journal()
    result = await ledger.one(expire())
    (tx,) = result.transactions
    assert (tx.type, tx.from_user_id, tx.to_user_id, tx.amount) == ("expire", "alice", "breakage", 7)
    assert tx.lots == ((lot, 7),)
    assert (tx.from_balance_after, tx.to_balance_after) == (0, 7)
    assert await ledger.remaining() == {lot: 0}
    again = await ledger.one(expire())
    assert (again.status, again.transactions) == (Status.OK, ())
    assert await ledger.journal() == journal + 1
    assert await ledger.supply() == 1010
    balances = await ledger.balances()
    assert balances["alice"][0] == 0 and balances["breakage"][0] == 7


async def test_expire_ignores_controls(ledger: Ledger) -> None:
    lot = new_id()
    await ledger.one(ledger.grant("alice", 10, lot_id=lot, expires_in=HOUR))
    await ledger.sql(lambda conn: conn.execute(
        sa.text("INSERT INTO tb_account_controls (token, user_id, debits_frozen, credits_frozen, closed, spent_total) "
                "VALUES (:token, 'alice', true, false, false, 0), (:token, 'breakage', false, true, false, 0)"),
        {"token": ledger.token},
    ))  # fmt: skip
    assert (await ledger.one(ledger.transfer("alice", "bob", 1))).status is Status.DEBITS_FROZEN
    assert (await ledger.one(ledger.grant("breakage", 1))).status is Status.CREDITS_FROZEN
    ledger.clock.advance(2 * HOUR)
    result = await ledger.one(ledger.op(OpKind.EXPIRE, lot_id=lot, from_user_id="alice", to_user_id="breakage"))
    assert result.transactions[0].amount == 10


async def test_a_replayed_grant_answers_the_stored_transaction_and_grants_once(ledger: Ledger) -> None:
    request = fingerprint("grant", 25, "promo")
    first = ledger.grant("alice", 25, expires_in=HOUR, category="promo", idempotency_key="g-1", fingerprint=request)
    again = ledger.grant("alice", 25, expires_in=HOUR, category="promo", idempotency_key="g-1", fingerprint=request)
    one, two = await ledger.apply(first, again)
    assert (one.status, two.status) == (Status.OK, Status.REPLAYED)
    assert two.transactions[0].id == first.tx_id and two.transactions[0].category == "promo"
    assert two.transactions[0].expires_at == START + HOUR
    assert await ledger.remaining() == {first.tx_id: 25}
    assert await ledger.supply() == 1025
    other = ledger.grant("alice", 26, idempotency_key="g-1", fingerprint=fingerprint("grant", 26))
    assert (await ledger.one(other)).status is Status.IDEMPOTENCY_CONFLICT


async def test_a_funded_grant_counts_in_the_funders_spend_window(ledger: Ledger) -> None:
    await ledger.sql(lambda conn: conn.execute(
        sa.text("INSERT INTO tb_account_controls (token, user_id, debits_frozen, credits_frozen, closed, "
                "window_amount, window_seconds, spent_total) VALUES (:token, 'treasury', false, false, false, 100, "
                "3600, 0)"),
        {"token": ledger.token},
    ))  # fmt: skip
    assert (await ledger.one(ledger.grant("bob", 80, funder="treasury"))).status is Status.OK
    assert (await ledger.one(ledger.grant("bob", 30, funder="treasury"))).status is Status.SPEND_LIMIT_EXCEEDED
    assert (await ledger.one(ledger.grant("bob", 30))).status is Status.OK  # minted: no spend
    assert (await ledger.one(ledger.transfer("treasury", "bob", 21))).status is Status.SPEND_LIMIT_EXCEEDED


# hybrid: tb_replicate_batch ------------------------------------------------------------------------------------
def _next_seq(conn: Connection) -> int:
    """A journal seq no other test of the session takes (entries replicated from Redis bring their own)."""
    return int(conn.scalar(sa.text("SELECT nextval(pg_get_serial_sequence('tb_transactions', 'seq'))")))


async def test_replication_creates_lots_and_applies_the_entries_moves_in_order(ledger: Ledger) -> None:
    lot, spend, hold_tx, hold_id, void = (new_id() for _ in range(5))
    at = to_us(START)

    s1, s2, s3, s4 = await ledger.sql(lambda conn: [_next_seq(conn) for _ in range(4)])
    moves = json.dumps([[lot, "5"]])
    entries: list[dict[str, Any]] = [
        {"seq": str(s1), "id": lot, "type": "grant", "to_user_id": "zoe", "amount": "50", "to_balance_after": "50",
         "created_at": str(at), "expires_at": str(at + 3_600_000_000), "category": "promo"},
        {"seq": str(s2), "id": spend, "type": "transfer", "from_user_id": "zoe", "to_user_id": "yann", "amount": "30",
         "from_balance_after": "20", "to_balance_after": "30", "created_at": str(at + 1),
         "lots": [[lot, "30"]]},
        {"seq": str(s3), "id": hold_tx, "type": "hold", "from_user_id": "zoe", "to_user_id": "yann", "amount": "5",
         "created_at": str(at + 2), "hold_id": hold_id, "lots": [[lot, "5"]],
         "hold": {"from_user_id": "zoe", "to_user_id": "yann", "amount": "5", "created_at": str(at + 2),
                  "expires_at": str(at + 10**9), "lots": [[lot, "5"]]}},
    ]  # fmt: skip

    def replicate(batch: list[dict[str, Any]]) -> Callable[[Connection], Any]:
        return lambda conn: conn.scalar(sa.text("SELECT tb_replicate_batch(:token, CAST(:entries AS jsonb))"),
                                        {"token": ledger.token, "entries": json.dumps(batch)})  # fmt: skip

    assert await ledger.sql(replicate(entries)) == 3
    assert await ledger.remaining() == {lot: 15}
    (row,) = await ledger.rows("SELECT * FROM tb_lots WHERE id = :id", id=lot)
    assert (row.user_id, row.amount, row.category) == ("zoe", 50, "promo")
    assert (row.expires_at, row.available_at, row.created_at) == (START + HOUR, None, START)
    balances = await ledger.balances()
    assert balances["zoe"] == (15, 5, True) and balances["yann"] == (30, 0, False)
    assert await ledger.supply() == 1050
    stored = {r.id: r for r in await ledger.rows(
        "SELECT id, lots, expires_at, category FROM tb_transactions WHERE token = :token AND lots IS NOT NULL "
        "OR id = :lot", lot=lot)}  # fmt: skip
    assert json.loads(stored[spend].lots) == [[lot, "30"]]
    assert (stored[lot].lots, stored[lot].expires_at, stored[lot].category) == (None, START + HOUR, "promo")
    (held,) = await ledger.rows("SELECT lots, status FROM tb_holds WHERE id = :id", id=hold_id)
    assert (json.loads(held.lots), held.status) == ([[lot, "5"]], "pending")
    # again: nothing new; then the void gives back (moves as text, as a SQL store keeps them)
    assert await ledger.sql(replicate(entries)) == 0
    void_entry = {"seq": str(s4), "id": void, "type": "void", "from_user_id": "zoe", "to_user_id": "yann",
                  "amount": "5", "created_at": str(at + 3), "hold_id": hold_id, "lots": json.dumps([[lot, "-5"]]),
                  "hold": {**entries[2]["hold"], "lots": moves}}  # fmt: skip
    assert await ledger.sql(replicate([void_entry])) == 1
    assert await ledger.remaining() == {lot: 20}
    assert (await ledger.balances())["zoe"] == (20, 0, True)


async def test_replication_refuses_a_move_of_a_lot_it_does_not_have(ledger: Ledger) -> None:
    def work(conn: Connection) -> Any:
        entry = {"seq": str(_next_seq(conn)), "id": new_id(), "type": "transfer", "from_user_id": "treasury",
                 "to_user_id": "x", "amount": "1", "created_at": str(to_us(START)),
                 "lots": [[new_id(), "1"]]}  # fmt: skip
        conn.exec_driver_sql("SAVEPOINT probe")
        try:
            conn.scalar(sa.text("SELECT tb_replicate_batch(:token, CAST(:entries AS jsonb))"),
                        {"token": ledger.token, "entries": json.dumps([entry])})  # fmt: skip
        except sa.exc.DBAPIError as exc:
            conn.exec_driver_sql("ROLLBACK TO SAVEPOINT probe")
            return str(exc)
        return None

    error = await ledger.sql(work)
    assert error is not None and "missing" in error and "CheckViolation" in error


# migration 0013 -------------------------------------------------------------------------------------------------
def _function_source(conn: Connection, name: str) -> str | None:
    return conn.scalar(  # type: ignore[no-any-return]
        sa.text("SELECT prosrc FROM pg_proc WHERE proname = :name AND pronamespace = current_schema()::regnamespace"),
        {"name": name},
    )


async def test_the_downgrade_restores_the_functions_before_lots(pg_backend: BoundBackend) -> None:
    from tests.chain.test_migration import _migrate
    from tokenbank.storage.sql.migrations.sqlfile import statements

    schema = unique("tblots_")
    settings = pg_backend.settings(initial_supply=100, decimals=0, database_schema=schema)
    replaced = {"tb_apply_one": "0011_overdraft_room.sql", "tb_apply_transfers": "0010_overdraft.sql",
                "tb_apply_controlled": "0010_overdraft.sql", "tb_controls_refusal": "0009_spend_totals.sql",
                "tb_apply": "0008_account_controls.sql", "tb_replicate_batch": "0012_replicate_upsert.sql"}  # fmt: skip
    async with TokenBank(settings) as bank:
        run_sync: Callable[..., Any] = bank.storage.run_sync  # type: ignore[attr-defined]

        def round_trip(conn: Connection) -> None:
            _migrate(conn, "downgrade", "0012")
            for name, filename in replaced.items():
                (before,) = [s for s in statements(filename) if f"FUNCTION {name}(" in s]
                source = _function_source(conn, name)
                assert source is not None and source in before, name
            for name in ("tb_lots_locked", "tb_lots_take", "tb_lots_give_back", "tb_lots_json"):
                assert _function_source(conn, name) is None
            assert conn.scalar(sa.text("SELECT to_regclass('tb_lots')")) is None
            ops = json.dumps([{"kind": "transfer", "id": new_id(), "from": "treasury", "to": "a", "amount": "5"}])
            raw = conn.scalar(sa.text("SELECT tb_apply(:token, CAST(:ops AS jsonb), false)"),
                              {"token": settings.symbol, "ops": ops})  # fmt: skip
            assert (json.loads(raw) if isinstance(raw, str) else raw)[0]["s"] == 0
            _migrate(conn, "upgrade", "head")
            assert "tb_lots_take" in (_function_source(conn, "tb_apply_one") or "")

        try:
            await run_sync(round_trip, write=True)
            lot = new_id()
            grant = WriteOp(kind=OpKind.GRANT, tx_id=lot, to_user_id="a", amount=5)
            spend = WriteOp(kind=OpKind.TRANSFER, tx_id=new_id(), from_user_id="a", to_user_id="b", amount=7)
            results = await bank.storage.apply([grant, spend])
            assert results[1].transactions[0].lots == ((lot, 5),)
        finally:
            await run_sync(lambda conn: conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE')), write=True)
