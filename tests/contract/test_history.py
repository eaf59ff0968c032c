"""Transaction history (keyset pages, filters), lookup by id, imports and the audit log."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tests.support import assert_error, history, snapshot
from tokenbank import (
    AuditEntry,
    IdempotencyConflictError,
    InvalidAccountError,
    InvalidRequestError,
    TokenBank,
    TransactionImport,
    TransactionNotFoundError,
    TransactionPage,
    TransactionType,
)
from tokenbank.services.transactions import encode_cursor


async def test_history_is_newest_first_and_covers_both_sides(bank: TokenBank) -> None:
    a = await bank.transfer("treasury", "alice", 10)
    b = await bank.transfer("alice", "bob", 3)
    c = await bank.mint("alice", 1)
    await bank.transfer("treasury", "bob", 1)  # not alice's
    d = await bank.burn("alice", 2)
    page = await bank.transactions.get_transaction_history("alice")
    assert isinstance(page, TransactionPage)
    assert [tx.id for tx in page.items] == [d.id, c.id, b.id, a.id]
    assert page.next_cursor is None
    assert (await bank.transactions.get_transaction_history("nobody")).items == []


async def test_pages_cover_everything_exactly_once_while_new_transfers_arrive(bank: TokenBank) -> None:
    for i in range(23):
        if i % 3:
            await bank.transfer("treasury", "alice", i + 1)
        else:
            await bank.mint("alice", 1)
    existing = [tx.id for tx in await history(bank, "alice")]
    assert len(existing) == 23
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await bank.transactions.get_transaction_history("alice", limit=5, cursor=cursor)
        pages += 1
        assert 1 <= len(page.items) <= 5
        seen.extend(tx.id for tx in page.items)
        # Writes between pages land above the cursor: they must not shift what the next pages return.
        await bank.transfer("treasury", "alice", 1)
        await bank.transfer("alice", "bob", "0.01")
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 5
    assert seen == existing
    newest = (await bank.transactions.get_transaction_history("alice", limit=10)).items
    assert len(newest) == 10 and newest[0].id not in existing


async def test_last_page_boundary(bank: TokenBank) -> None:
    for _ in range(4):
        await bank.transfer("treasury", "alice", 1)
    first = await bank.transactions.get_transaction_history("alice", limit=2)
    assert first.next_cursor is not None
    second = await bank.transactions.get_transaction_history("alice", limit=2, cursor=first.next_cursor)
    assert len(second.items) == 2 and second.next_cursor is None
    whole = await bank.transactions.get_transaction_history("alice", limit=4)
    assert whole.next_cursor is None


async def test_type_filter(bank: TokenBank) -> None:
    await bank.transfer("treasury", "alice", 10)
    mint = await bank.mint("alice", 5)
    burn = await bank.burn("alice", 1)
    hold = await bank.hold("alice", "bob", 2, expires_in=60)
    await bank.void(hold.id)
    minted = await history(bank, "alice", types=["mint"])
    assert [tx.id for tx in minted] == [mint.id]
    both = await history(bank, "alice", types=[TransactionType.MINT, "burn"])
    assert [tx.id for tx in both] == [burn.id, mint.id]
    assert [tx.type for tx in await history(bank, "alice", types=["hold", "void"])] == ["void", "hold"]
    assert await history(bank, "alice", types=["reversal"]) == []
    with pytest.raises(InvalidRequestError):
        await bank.transactions.get_transaction_history("alice", types=["refund"])


async def test_time_filters(bank: TokenBank) -> None:
    txs = [await bank.transfer("treasury", "alice", i + 1) for i in range(4)]
    times = [tx.timestamp for tx in txs]
    assert times == sorted(times) and len(set(times)) == 4
    mid = [a + (b - a) / 2 for a, b in itertools.pairwise(times)]
    assert [tx.id for tx in await history(bank, "alice", since=mid[1])] == [txs[3].id, txs[2].id]
    assert [tx.id for tx in await history(bank, "alice", until=mid[0])] == [txs[0].id]
    window = await history(bank, "alice", since=mid[0], until=mid[2])
    assert [tx.id for tx in window] == [txs[2].id, txs[1].id]
    # since is inclusive, whatever the notation of the moment
    plus2 = timezone(timedelta(hours=2))
    assert txs[3].id in [tx.id for tx in await history(bank, "alice", since=times[3].astimezone(plus2))]
    assert await history(bank, "alice", since=datetime.now(UTC) + timedelta(minutes=1)) == []
    with pytest.raises(InvalidRequestError):
        await bank.transactions.get_transaction_history("alice", since=datetime(2024, 1, 1))


async def test_filters_combine_with_pages(bank: TokenBank) -> None:
    for _ in range(6):
        await bank.transfer("treasury", "alice", 1)
        await bank.mint("alice", 1)
    first = await bank.transactions.get_transaction_history("alice", limit=4, types=["mint"])
    rest = await bank.transactions.get_transaction_history("alice", limit=4, types=["mint"], cursor=first.next_cursor)
    assert {tx.type for tx in first.items + rest.items} == {TransactionType.MINT}
    assert len(first.items) + len(rest.items) == 6 and rest.next_cursor is None


@pytest.mark.parametrize("cursor", ["garbage", "", "!!!", encode_cursor(1)[:-2] + "@@", "czE6LTU", "czE6eA", 42])
async def test_bad_cursor(bank: TokenBank, cursor: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await bank.transactions.get_transaction_history("alice", cursor=cursor)  # type: ignore[arg-type]
    assert_error(caught.value, InvalidRequestError)


@pytest.mark.parametrize("limit", [0, -1, 1001, "5", None])
async def test_bad_limit(bank: TokenBank, limit: object) -> None:
    with pytest.raises(InvalidRequestError):
        await bank.transactions.get_transaction_history("alice", limit=limit)  # type: ignore[arg-type]


async def test_history_of_an_invalid_account(bank: TokenBank) -> None:
    with pytest.raises(InvalidAccountError):
        await bank.transactions.get_transaction_history("")


async def test_get_transaction_by_id(bank: TokenBank) -> None:
    tx = await bank.transfer("treasury", "alice", 1, metadata={"k": "v"}, reason="why")
    assert await bank.transactions.get_transaction_by_id(tx.id) == tx
    with pytest.raises(TransactionNotFoundError) as caught:
        await bank.transactions.get_transaction_by_id(str(uuid.uuid4()))
    assert_error(caught.value, TransactionNotFoundError)
    with pytest.raises(TransactionNotFoundError):
        await bank.transactions.get_transaction_by_id("not-a-uuid")
    with pytest.raises(InvalidRequestError):
        await bank.transactions.get_transaction_by_id("")


# imports ----------------------------------------------------------------------------------------------------
async def test_record_transaction_keeps_id_and_timestamp(bank: TokenBank) -> None:
    tx_id = str(uuid.uuid4())
    when = datetime(2021, 3, 4, 5, 6, 7, 891011, tzinfo=timezone(timedelta(hours=-3)))
    imported = await bank.transactions.record_transaction(
        TransactionImport(
            type="transfer", amount="2.5", from_user_id="treasury", to_user_id="alice", id=tx_id,
            timestamp=when, metadata={"legacy": True}, reason="migrated",
        )
    )  # fmt: skip
    assert imported.id == tx_id
    assert imported.timestamp == when and imported.timestamp.utcoffset() == timedelta(0)
    assert (imported.type, imported.amount, imported.metadata, imported.reason) == (
        TransactionType.TRANSFER,
        Decimal("2.5"),
        {"legacy": True},
        "migrated",
    )
    assert await bank.transactions.get_transaction_by_id(tx_id) == imported
    assert await bank.get_balances(["treasury", "alice"]) == {"treasury": Decimal("997.5"), "alice": Decimal("2.5")}
    [entry, *_] = await bank.get_audit_log()
    assert entry.action == "import.transfer" and entry.details["transaction_id"] == tx_id
    before = await snapshot(bank)
    with pytest.raises(IdempotencyConflictError) as caught:
        await bank.transactions.record_transaction(
            {"type": "transfer", "amount": 1, "from_user_id": "treasury", "to_user_id": "bob", "id": tx_id}
        )
    assert_error(caught.value, IdempotencyConflictError)
    assert await snapshot(bank) == before


async def test_record_mint_and_burn_from_a_mapping(bank: TokenBank) -> None:
    mint = await bank.transactions.record_transaction({"type": "mint", "amount": 5, "to_user_id": "alice"})
    burn = await bank.transactions.record_transaction(
        {"type": "burn", "amount": 2, "from_user_id": "alice", "timestamp": datetime(2020, 1, 1, tzinfo=UTC)}
    )
    assert (mint.type, burn.type) == (TransactionType.MINT, TransactionType.BURN)
    assert burn.timestamp == datetime(2020, 1, 1, tzinfo=UTC)
    assert await bank.get_balance("alice") == 3
    assert await bank.get_total_supply() == 1003
    actions = [e.action for e in await bank.get_audit_log(limit=2)]
    assert actions == ["import.burn", "import.mint"]


@pytest.mark.parametrize(
    "dto",
    [
        {"type": "hold", "amount": 1, "from_user_id": "treasury", "to_user_id": "alice"},
        {"type": "transfer", "amount": 1, "from_user_id": "treasury", "to_user_id": "alice", "id": "legacy-7"},
        {"type": "transfer", "amount": 1, "from_user_id": "treasury", "to_user_id": "alice",
         "timestamp": datetime(2020, 1, 1)},
    ],
    ids=["not-importable-type", "non-uuid-id", "naive-timestamp"],
)  # fmt: skip
async def test_record_transaction_refuses_bad_imports(bank: TokenBank, dto: dict[str, object]) -> None:
    before = await snapshot(bank)
    with pytest.raises(InvalidRequestError):
        await bank.transactions.record_transaction(dto)
    assert await snapshot(bank) == before


async def test_record_transaction_keeps_balance_rules(bank: TokenBank) -> None:
    with pytest.raises(Exception, match="insufficient"):
        await bank.transactions.record_transaction(
            TransactionImport(type="transfer", amount=1, from_user_id="alice", to_user_id="bob", id=str(uuid.uuid4()))
        )
    assert await bank.get_balances(["alice", "bob"]) == {"alice": 0, "bob": 0}


# audit ------------------------------------------------------------------------------------------------------
async def test_audit_log_newest_first_with_paging(bank: TokenBank) -> None:
    mint = await bank.mint("alice", 1, reason="r1")
    burn = await bank.burn("alice", 1, reason="r2")
    await bank.transfer("treasury", "bob", 1)  # transfers are not audited
    log = await bank.get_audit_log()
    assert all(isinstance(e, AuditEntry) for e in log)
    assert [e.action for e in log] == ["burn", "mint", "mint", "token.initialize"]
    assert [e.details["transaction_id"] for e in log[:2]] == [burn.id, mint.id]
    assert log[2].details["reason"] == "initial supply"
    assert [e.id for e in log] == sorted((e.id for e in log), reverse=True)
    assert all(e.timestamp.utcoffset() == timedelta(0) for e in log)
    older = await bank.get_audit_log(limit=2, before_id=log[1].id)
    assert [e.id for e in older] == [log[2].id, log[3].id]
    assert await bank.get_audit_log(limit=1) == log[:1]
    with pytest.raises(InvalidRequestError):
        await bank.get_audit_log(limit=0)
