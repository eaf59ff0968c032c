"""Every malformed request fails with its typed error and code, and changes nothing; odd ids are plain data."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from tests.backends import BoundBackend, unique
from tests.support import history, open_bank, snapshot
from tokenbank import (
    HoldNotFoundError,
    HoldStatus,
    InvalidAccountError,
    InvalidAmountError,
    InvalidRequestError,
    TokenBank,
    TokenBankError,
    TransactionNotFoundError,
    TransactionType,
)

Call = Callable[[TokenBank], Awaitable[Any]]


def transfer(amount: Any = 1, sender: Any = "alice", receiver: Any = "bob", **kwargs: Any) -> Call:
    return lambda bank: bank.transfer(sender, receiver, amount, **kwargs)


def split(legs: Any = (("bob", "50%"), ("carol", "1")), amount: Any = 10, **kwargs: Any) -> Call:
    return lambda bank: bank.transfer_split("alice", amount, legs, **kwargs)


BAD_AMOUNTS: list[tuple[str, Any]] = [
    ("float", 1.5),
    ("float-integral", 1.0),
    ("zero", 0),
    ("zero-str", "0.00"),
    ("zero-decimal", Decimal(0)),
    ("negative", -1),
    ("negative-str", "-0.01"),
    ("negative-zero", "-0"),
    ("too-many-decimals", "0.001"),
    ("too-many-decimals-decimal", Decimal("1.005")),
    ("nan", "NaN"),
    ("nan-decimal", Decimal("NaN")),
    ("snan", "sNaN"),
    ("infinity", "Infinity"),
    ("minus-infinity-decimal", Decimal("-Infinity")),
    ("float-nan", math.nan),
    ("float-inf", math.inf),
    ("2**63-base-units", Decimal(2**63).scaleb(-2)),
    ("2**63-tokens", 2**63),
    ("huge", "1e40"),
    ("exponent", "1e2"),
    ("exponent-upper", "1E+2"),
    ("plus-sign", "+5"),
    ("whitespace", " 5 "),
    ("trailing-newline", "5\n"),
    ("true", True),
    ("false", False),
    ("none", None),
    ("abc", "abc"),
    ("empty", ""),
    ("blank", "   "),
    ("comma", "1,5"),
    ("hex", "0x10"),
    ("list", [1]),
    ("bytes", b"1"),
    ("30-significant-digits", "1.00000000000000000000000000001"),
    ("long-fraction-decimal", Decimal("5.0000000000000000000000000000000000000001")),
    ("would-round-up", Decimal("0.999999999999999999999999999999")),
]

BAD_ACCOUNTS: list[tuple[str, Any]] = [
    ("empty", ""),
    ("129-chars", "x" * 129),
    ("nul", "a\x00b"),
    ("newline", "a\nb"),
    ("tab", "\t"),
    ("del", "a\x7fb"),
    ("c1-control", "a\x85b"),
    ("escape", "\x1b[31m"),
    ("lone-surrogate", "a\ud800b"),
    ("int", 123),
    ("none", None),
    ("bytes", b"alice"),
    ("list", ["alice"]),
]

Case = tuple[str, Call, type[TokenBankError]]

AMOUNT_CASES: list[Case] = [
    *((f"transfer-amount-{label}", transfer(amount), InvalidAmountError) for label, amount in BAD_AMOUNTS),
    *(
        (f"mint-amount-{label}", lambda b, a=amount: b.mint("alice", a), InvalidAmountError)
        for label, amount in BAD_AMOUNTS[:10]
    ),
    ("mint-amount-none", lambda b: b.mint("alice", None), InvalidAmountError),  # type: ignore[arg-type]
    ("burn-amount-none", lambda b: b.burn("alice", None), InvalidAmountError),  # type: ignore[arg-type]
    ("burn-amount-float", lambda b: b.burn("alice", 0.5), InvalidAmountError),  # type: ignore[arg-type]
    ("burn-amount-zero", lambda b: b.burn("alice", 0), InvalidAmountError),
    ("hold-amount-none", lambda b: b.hold("alice", "bob", None, expires_in=60), InvalidAmountError),  # type: ignore[arg-type]
    ("hold-amount-float", lambda b: b.hold("alice", "bob", 0.5, expires_in=60), InvalidAmountError),  # type: ignore[arg-type]
    ("hold-amount-negative", lambda b: b.hold("alice", "bob", -5, expires_in=60), InvalidAmountError),
    ("capture-amount-float", lambda b: b.capture("00000000-0000-0000-0000-000000000000", 0.5), InvalidAmountError),  # type: ignore[arg-type]
    *(
        (f"max-balance-{label}", lambda b, a=amount: b.set_limits("alice", max_balance=a), InvalidAmountError)
        for label, amount in BAD_AMOUNTS[:10]
    ),
    *(  # 0 and None are valid overdrafts (none): every other bad amount is refused
        (f"overdraft-{label}", lambda b, a=amount: b.set_limits("alice", overdraft=a), InvalidAmountError)
        for label, amount in BAD_AMOUNTS
        if not label.startswith("zero") and label != "none"
    ),
    ("overdraft-bool", lambda b: b.set_limits("alice", overdraft=True), InvalidAmountError),
    ("spend-window-amount-float", lambda b: b.set_limits("alice", spend_per_window=(0.5, 60)), InvalidAmountError),  # type: ignore[arg-type]
    ("spend-window-amount-none", lambda b: b.set_limits("alice", spend_per_window=(None, 60)), InvalidAmountError),  # type: ignore[arg-type]
    ("spend-window-amount-zero", lambda b: b.set_limits("alice", spend_per_window=(0, 60)), InvalidAmountError),
    ("split-amount-zero", split(amount=0), InvalidAmountError),
    ("split-share-float", split(legs=[("bob", 0.5)]), InvalidAmountError),
    ("split-share-zero-percent", split(legs=[("bob", "0%")]), InvalidAmountError),
    ("split-percentages-over-100", split(legs=[("bob", "60%"), ("carol", "41%")]), InvalidAmountError),
    ("split-shares-over-amount", split(legs=[("bob", "95%"), ("carol", "0.51")]), InvalidAmountError),
]

ACCOUNT_CASES: list[Case] = [
    *((f"sender-{label}", transfer(sender=account), InvalidAccountError) for label, account in BAD_ACCOUNTS),
    *((f"receiver-{label}", transfer(receiver=account), InvalidAccountError) for label, account in BAD_ACCOUNTS),
    ("self-transfer", transfer(sender="alice", receiver="alice"), InvalidAccountError),
    ("mint-to-empty", lambda b: b.mint("", 1), InvalidAccountError),
    ("mint-to-int", lambda b: b.mint(7, 1), InvalidAccountError),  # type: ignore[arg-type]
    ("burn-from-129-chars", lambda b: b.burn("x" * 129, 1), InvalidAccountError),
    ("hold-to-self", lambda b: b.hold("alice", "alice", 1, expires_in=60), InvalidAccountError),
    ("hold-from-control-char", lambda b: b.hold("al\x01ice", "bob", 1, expires_in=60), InvalidAccountError),
    ("get-balance-empty", lambda b: b.get_balance(""), InvalidAccountError),
    ("get-balances-one-bad", lambda b: b.get_balances(["alice", None]), InvalidAccountError),  # type: ignore[list-item]
    ("get-held-bad", lambda b: b.get_held_balance("x" * 200), InvalidAccountError),
    ("get-rank-bad", lambda b: b.get_rank(""), InvalidAccountError),
    ("get-balance-at-bad", lambda b: b.get_balance_at("", datetime.now(UTC)), InvalidAccountError),
    ("history-bad", lambda b: b.transactions.get_transaction_history("a\nb"), InvalidAccountError),
    ("get-account-empty", lambda b: b.get_account(""), InvalidAccountError),
    ("freeze-none", lambda b: b.freeze(None, reason="x"), InvalidAccountError),  # type: ignore[arg-type]
    ("unfreeze-129-chars", lambda b: b.unfreeze("x" * 129), InvalidAccountError),
    ("close-control-char", lambda b: b.close_account("a\x00b"), InvalidAccountError),
    ("set-limits-int", lambda b: b.set_limits(7, max_balance=5), InvalidAccountError),  # type: ignore[arg-type]
    ("split-leg-to-sender", split(legs=[("bob", "1"), ("alice", "1")]), InvalidAccountError),
    ("split-receiver-twice", split(legs=[("bob", "1"), ("bob", "2")]), InvalidAccountError),
    ("split-remainder-to-sender", split(remainder_to="alice"), InvalidAccountError),
]

REQUEST_CASES: list[Case] = [
    ("metadata-over-4kib", transfer(metadata={"blob": "x" * 4100}), InvalidRequestError),
    ("metadata-multibyte-over-4kib", transfer(metadata={"blob": "é" * 2100}), InvalidRequestError),
    ("metadata-list", transfer(metadata=[1, 2]), InvalidRequestError),
    ("metadata-str", transfer(metadata='{"a": 1}'), InvalidRequestError),
    ("metadata-nan", transfer(metadata={"x": math.nan}), InvalidRequestError),
    ("metadata-object", transfer(metadata={"x": object()}), InvalidRequestError),
    ("metadata-decimal", transfer(metadata={"x": Decimal(1)}), InvalidRequestError),
    ("mint-metadata-over-4kib", lambda b: b.mint("alice", 1, metadata={"b": "x" * 5000}), InvalidRequestError),
    ("idempotency-key-empty", transfer(idempotency_key=""), InvalidRequestError),
    ("idempotency-key-129", transfer(idempotency_key="k" * 129), InvalidRequestError),
    ("idempotency-key-int", transfer(idempotency_key=42), InvalidRequestError),
    ("idempotency-key-control", transfer(idempotency_key="a\nb"), InvalidRequestError),
    ("idempotency-key-lone-surrogate", transfer(idempotency_key="k\ud800"), InvalidRequestError),
    ("metadata-lone-surrogate", transfer(metadata={"x": "\ud800"}), InvalidRequestError),
    ("reason-lone-surrogate", transfer(reason="\ud800"), InvalidRequestError),
    ("reason-not-str", transfer(reason=5), InvalidRequestError),
    ("reason-too-long", transfer(reason="r" * 501), InvalidRequestError),
    ("hold-expires-zero", lambda b: b.hold("alice", "bob", 1, expires_in=0), InvalidRequestError),
    (
        "hold-expires-negative",
        lambda b: b.hold("alice", "bob", 1, expires_in=timedelta(seconds=-1)),
        InvalidRequestError,
    ),
    ("hold-expires-bool", lambda b: b.hold("alice", "bob", 1, expires_in=True), InvalidRequestError),
    ("hold-expires-str", lambda b: b.hold("alice", "bob", 1, expires_in="60"), InvalidRequestError),  # type: ignore[arg-type]
    ("hold-expires-nan", lambda b: b.hold("alice", "bob", 1, expires_in=math.nan), InvalidRequestError),
    ("hold-expires-decimal-nan", lambda b: b.hold("alice", "bob", 1, expires_in=Decimal("NaN")), InvalidRequestError),  # type: ignore[arg-type]
    ("hold-expires-too-long", lambda b: b.hold("alice", "bob", 1, expires_in=timedelta(days=400)), InvalidRequestError),
    ("capture-id-none", lambda b: b.capture(None), InvalidRequestError),  # type: ignore[arg-type]
    ("capture-id-empty", lambda b: b.capture(""), InvalidRequestError),
    ("void-id-int", lambda b: b.void(5), InvalidRequestError),  # type: ignore[arg-type]
    ("reverse-no-reason", lambda b: b.reverse("00000000-0000-0000-0000-000000000000", reason=""), InvalidRequestError),
    ("reverse-id-none", lambda b: b.reverse(None, reason="x"), InvalidRequestError),  # type: ignore[arg-type]
    ("audit-before-id-str", lambda b: b.get_audit_log(before_id="abc"), InvalidRequestError),  # type: ignore[arg-type]
    ("audit-limit-zero", lambda b: b.get_audit_log(limit=0), InvalidRequestError),
    ("top-limit-zero", lambda b: b.get_top_holders(limit=0), InvalidRequestError),
    ("top-offset-negative", lambda b: b.get_top_holders(offset=-1), InvalidRequestError),
    ("balance-at-naive", lambda b: b.get_balance_at("alice", datetime(2024, 1, 1)), InvalidRequestError),
    ("history-types", lambda b: b.transactions.get_transaction_history("alice", types=["x"]), InvalidRequestError),
    ("history-cursor", lambda b: b.transactions.get_transaction_history("alice", cursor="x"), InvalidRequestError),
    ("freeze-no-reason", lambda b: b.freeze("alice", reason=""), InvalidRequestError),
    ("freeze-reason-none", lambda b: b.freeze("alice", reason=None), InvalidRequestError),  # type: ignore[arg-type]
    ("freeze-reason-too-long", lambda b: b.freeze("alice", reason="r" * 501), InvalidRequestError),
    ("freeze-reason-nul", lambda b: b.freeze("alice", reason="a\x00b"), InvalidRequestError),
    ("freeze-neither-direction", lambda b: b.freeze("alice", debits=False, reason="x"), InvalidRequestError),
    ("freeze-debits-str", lambda b: b.freeze("alice", debits="yes", reason="x"), InvalidRequestError),  # type: ignore[arg-type]
    ("freeze-credits-int", lambda b: b.freeze("alice", credits=1, reason="x"), InvalidRequestError),  # type: ignore[arg-type]
    ("freeze-until-naive", lambda b: b.freeze("alice", reason="x", until=datetime(2999, 1, 1)), InvalidRequestError),
    (
        "freeze-until-past",
        lambda b: b.freeze("alice", reason="x", until=datetime(2000, 1, 1, tzinfo=UTC)),
        InvalidRequestError,
    ),
    ("freeze-until-str", lambda b: b.freeze("alice", reason="x", until="2999-01-01T00:00:00Z"), InvalidRequestError),  # type: ignore[arg-type]
    ("spend-window-not-a-pair", lambda b: b.set_limits("alice", spend_per_window=10), InvalidRequestError),  # type: ignore[arg-type]
    ("spend-window-triple", lambda b: b.set_limits("alice", spend_per_window=(1, 2, 3)), InvalidRequestError),  # type: ignore[arg-type]
    ("spend-window-0s", lambda b: b.set_limits("alice", spend_per_window=(1, 0)), InvalidRequestError),
    ("spend-window-fraction", lambda b: b.set_limits("alice", spend_per_window=(1, 1.5)), InvalidRequestError),
    ("spend-window-bool", lambda b: b.set_limits("alice", spend_per_window=(1, True)), InvalidRequestError),
    ("spend-window-str", lambda b: b.set_limits("alice", spend_per_window=(1, "60")), InvalidRequestError),  # type: ignore[arg-type]
    (
        "spend-window-367-days",
        lambda b: b.set_limits("alice", spend_per_window=(1, timedelta(days=367))),
        InvalidRequestError,
    ),
    ("split-no-legs", split(legs=[]), InvalidRequestError),
    ("split-101-legs", split(legs=[(f"u{n}", "0.01") for n in range(101)]), InvalidRequestError),
    ("split-metadata-split-id", split(metadata={"split_id": "mine"}), InvalidRequestError),
    ("split-idempotency-key-129", split(idempotency_key="k" * 129), InvalidRequestError),
]


TABLES = {"amounts": AMOUNT_CASES, "accounts": ACCOUNT_CASES, "requests": REQUEST_CASES}


def _outcome(exc: BaseException | None, expected: type[TokenBankError]) -> str | None:
    """None if ``exc`` is exactly the expected typed error with its code and a message, else what went wrong."""
    if exc is None:
        return f"expected {expected.__name__}, nothing was raised"
    if type(exc) is not expected:
        return f"expected {expected.__name__}, got {type(exc).__name__}: {exc}"
    if getattr(exc, "code", None) != expected.code or not str(exc):
        return f"{expected.__name__} without its code {expected.code!r} or a message"
    return None


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def refusing_bank(shared_bank: TokenBank) -> TokenBank:
    """The module's bank on one backend, alice funded with 100.00 and bob with 10.00 once: every test below
    that takes it makes calls that must change nothing, and checks that after each call."""
    await shared_bank.transfer("treasury", "alice", 100)
    await shared_bank.transfer("treasury", "bob", 10)
    return shared_bank


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("table", TABLES)
async def test_bad_input_is_refused_and_changes_nothing(refusing_bank: TokenBank, table: str) -> None:
    """Every row: the exact error class, its stable code, and a ledger that did not move (one bank per backend
    for all tables; the ledger is compared after every row, so a row that changes anything is named)."""
    bank = refusing_bank
    expected_state = await _state(bank)
    problems = []
    for label, call, error in TABLES[table]:
        raised: BaseException | None = None
        try:
            await call(bank)
        except Exception as exc:
            raised = exc
        if (problem := _outcome(raised, error)) is not None:
            problems.append(f"{label}: {problem}")
        state = await _state(bank)
        if state != expected_state:
            problems.append(f"{label}: the ledger changed")
            expected_state = state
    assert not problems, f"{len(problems)} of {len(TABLES[table])} bad inputs mishandled:\n" + "\n".join(problems)


async def _state(bank: TokenBank) -> tuple[object, ...]:
    """The ledger, and the controls of the accounts the rows name (a control change also writes an audit entry)."""
    return await snapshot(bank), await bank.get_account("alice"), await bank.get_account("bob")


def test_the_tables_are_big_enough() -> None:
    labels = [label for table in TABLES.values() for label, _, _ in table]
    assert len(labels) == len(set(labels)) > 120


# Edge values of the controls: a NaN or infinite window, an until beyond year 9999 once in UTC.
CONTROL_EDGES: list[Case] = [
    ("spend-window-nan", lambda b: b.set_limits("alice", spend_per_window=(1, math.nan)), InvalidRequestError),
    ("spend-window-inf", lambda b: b.set_limits("alice", spend_per_window=(1, math.inf)), InvalidRequestError),
    (
        "freeze-until-beyond-9999-in-utc",
        lambda b: b.freeze("alice", reason="x", until=datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))),
        InvalidRequestError,
    ),
]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("label", "call", "error"), CONTROL_EDGES, ids=[case[0] for case in CONTROL_EDGES])
async def test_control_edge_values_are_typed_errors(
    refusing_bank: TokenBank, label: str, call: Call, error: type
) -> None:
    bank = refusing_bank
    before = await _state(bank)
    raised: BaseException | None = None
    try:
        await call(bank)
    except Exception as exc:
        raised = exc
    assert _outcome(raised, error) is None, f"{label}: {_outcome(raised, error)}"
    assert await _state(bank) == before


async def test_a_freeze_until_the_last_microsecond_reads_back(backend: BoundBackend) -> None:
    """The latest ``until`` a datetime can hold is stored and read back as given."""
    until = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    async with open_bank(backend, initial_supply=10) as bank:
        frozen = (await bank.freeze("alice", reason="for good", until=until)).frozen
        assert frozen is not None and frozen.until == until


NUL_TEXT = "line\x00two"


@pytest.mark.parametrize(
    "field",
    ["transfer-reason", "mint-reason", "burn-reason", "reverse-reason", "capture-reason", "void-reason"],
)
async def test_text_with_nul_round_trips_or_is_refused_never_a_storage_error(bank: TokenBank, field: str) -> None:
    """A reason is free text: whatever the store, it comes back as written or is refused as a bad request."""
    await bank.transfer("treasury", "alice", 100)
    tx = await bank.transfer("alice", "bob", 5)
    hold = await bank.hold("alice", "bob", 5, expires_in=60)
    calls: dict[str, Call] = {
        "transfer-reason": lambda b: b.transfer("alice", "bob", 1, reason=NUL_TEXT),
        "mint-reason": lambda b: b.mint("alice", 1, reason=NUL_TEXT),
        "burn-reason": lambda b: b.burn("alice", 1, reason=NUL_TEXT),
        "reverse-reason": lambda b: b.reverse(tx.id, reason=NUL_TEXT),
        "capture-reason": lambda b: b.capture(hold.id, reason=NUL_TEXT),
        "void-reason": lambda b: b.void(hold.id, reason=NUL_TEXT),
    }
    before = await snapshot(bank)
    try:
        await calls[field](bank)
    except InvalidRequestError:
        assert await snapshot(bank) == before
    else:
        [latest, *_] = await history(bank, "alice")
        assert latest.reason == NUL_TEXT


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("method", ["get_transaction_by_id", "reverse", "capture", "void", "get_hold"])
async def test_ids_with_nul_are_not_found_or_refused_never_a_storage_error(
    refusing_bank: TokenBank, method: str
) -> None:
    bank = refusing_bank
    calls: dict[str, Call] = {
        "get_transaction_by_id": lambda b: b.transactions.get_transaction_by_id("a\x00b"),
        "reverse": lambda b: b.reverse("a\x00b", reason="r"),
        "capture": lambda b: b.capture("a\x00b"),
        "void": lambda b: b.void("a\x00b"),
        "get_hold": lambda b: b.get_hold("a\x00b"),
    }
    before = await snapshot(bank)
    with pytest.raises(TokenBankError) as caught:
        await calls[method](bank)
    allowed = (InvalidRequestError, TransactionNotFoundError, HoldNotFoundError)
    assert isinstance(caught.value, allowed), f"{type(caught.value).__name__}: {caught.value}"
    assert await snapshot(bank) == before


async def test_metadata_of_exactly_4_kib_is_accepted(bank: TokenBank) -> None:
    metadata = {"blob": "x" * (4096 - len('{"blob":""}'))}
    tx = await bank.transfer("treasury", "alice", 1, metadata=metadata)
    assert tx.metadata == metadata
    with pytest.raises(InvalidRequestError):
        await bank.transfer("treasury", "alice", 1, metadata={"blob": metadata["blob"] + "x"})


ODD_IDS = [
    "a:b",
    "{x}",
    "{tb}:balances",
    "*",
    "'; DROP TABLE tb_accounts;--",
    '"quoted"',
    "with space",
    " leading and trailing ",
    "%_like_wildcards_%",
    "back\\slash",
    "ünïcødé-用户-😀",
    "x" * 128,
    "0",
    "$1",
    "null",
]


async def test_odd_account_ids_are_ordinary_data(backend: BoundBackend) -> None:
    """Each id on its own fresh token (same database): every operation works and nothing else is touched."""
    for user_id in ODD_IDS:
        async with open_bank(backend, symbol=unique(), initial_supply=1000) as bank:
            try:
                await _odd_id_end_to_end(bank, user_id)
            except AssertionError as exc:
                raise AssertionError(f"account id {user_id!r}: {exc}") from exc


async def _odd_id_end_to_end(bank: TokenBank, user_id: str) -> None:
    first = await bank.transfer("treasury", user_id, 50, metadata={"id": user_id})
    assert first.to_user_id == user_id
    paid = await bank.transfer(user_id, "plain", 5)
    await bank.mint(user_id, 1, reason=user_id)
    await bank.burn(user_id, 1)
    hold = await bank.hold(user_id, "plain", 10, expires_in=60)
    assert hold.from_user_id == user_id
    assert await bank.get_held_balance(user_id) == 10
    assert (await bank.capture(hold.id, 4)).status is HoldStatus.CAPTURED
    reversal = await bank.reverse(paid.id, reason="refund")
    assert (reversal.from_user_id, reversal.to_user_id) == ("plain", user_id)
    await bank.transfer("treasury", user_id, 20)
    assert await bank.get_balance(user_id) == 66
    assert await bank.get_balances([user_id, "plain"]) == {user_id: 66, "plain": 4}
    assert [(h.user_id, h.rank) for h in await bank.get_top_holders()] == [(user_id, 1), ("plain", 2)]
    assert await bank.get_rank(user_id) == 1
    items = await history(bank, user_id)
    assert len(items) == 9  # transfer, transfer, mint, burn, hold, capture, void (the rest), reversal, transfer
    assert all(user_id in (t.from_user_id, t.to_user_id) for t in items)
    assert items[-1].id == first.id and items[-1].metadata == {"id": user_id}
    assert items[-1].type is TransactionType.TRANSFER
    assert [t.reason for t in items if t.type is TransactionType.MINT] == [user_id]
    assert await bank.get_balance_at(user_id, first.timestamp) == 50
    assert await bank.transactions.get_transaction_by_id(first.id) == first
    assert await bank.get_total_supply() == 1000
    assert await bank.get_balance("treasury") == 930
