"""A random walk of ledger operations, checked after every step against a plain in-memory model.

The account set is small and amounts are large relative to balances, so refusals (insufficient balance,
supply cap, settled holds, second reversals, frozen accounts, maximum balances, spend windows, stakes unstaked too
early, lots not yet available or expired) happen as often
as successes. Time is the bank's controllable clock, moved by a rule of its own: holds expire (a capture after
the expiry is refused, the sweep voids exactly the holds due), freezes end at their ``until``, and spends leave
their account's window exactly one window length after they were made (a change of the window's length forgets what
had left the old one; a removal forgets every spend). Credit lots are granted with and without an expiry and a
maturity: every debit must take them in the spend order the model computes (soonest expiry first, then no expiry,
then the plain balance), a void and a reversal must give back to the same lots, and the expiry sweep must move
exactly the expired remainders to the breakage account.
A second token (gems, whole units, no account controls) on the same store takes part through exchanges; an
in-memory SQLite database belongs to one bank, so there the machine has no second token.
Runs on every backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.backends import BoundBackend, unique
from tokenbank import (
    AccountFrozenError,
    BatchAbortedError,
    HoldStateError,
    HoldStatus,
    InsufficientBalanceError,
    InvalidAccountError,
    InvalidAmountError,
    InvalidRequestError,
    LimitExceededError,
    StakeLockedError,
    StakeStatus,
    SupplyCapExceededError,
    TokenBank,
    TokenBankError,
    Transaction,
    TransactionStateError,
    TransferRequest,
    exchange,
)
from tokenbank.splits import plan_split
from tokenbank.testing import ManualClock

T = TypeVar("T")
ACCOUNTS = ("treasury", "alice", "bob", "carol")
DECIMALS = 2
INITIAL = 100_00  # base units
MAX_SUPPLY = 300_00
GEMS = 500
"""The second token's supply (whole gems), all of it in the treasury at first."""

accounts = st.sampled_from(ACCOUNTS)
units = st.integers(min_value=1, max_value=60_00)
forms = st.sampled_from(["str", "decimal", "int"])
WINDOWS = st.sampled_from([30, 60, 120])
"""Spend window lengths in seconds: a change may lengthen or shorten an account's window."""
HOLD_SECONDS = 60
steps = st.sampled_from([1, 30, 60, 3600])
"""How far the clock moves in one step: onto the window's end and the holds' expiry, and far past them."""
SHARES = ["10%", "33.33%", "50%", "0.5%", "1.25", "20.00"]
"""Split shares: percentages that round, and fixed amounts that may exceed a small split."""


def tokens(amount: int) -> Decimal:
    return Decimal(amount).scaleb(-DECIMALS)


def as_input(amount: int, form: str) -> Any:
    """The same amount as str, Decimal or (when whole) int: every form must be exact."""
    if form == "int" and amount % 10**DECIMALS == 0:
        return amount // 10**DECIMALS
    return tokens(amount) if form == "decimal" else format(tokens(amount), "f")


Moves = list[tuple[str, int]]
"""(lot id, units) a debit took from lots, in order."""
LOT_EXPIRIES = st.sampled_from([None, 30, 120, 3600])
"""Seconds from the grant until a lot expires (None: never)."""
LOT_DELAYS = st.sampled_from([None, None, 60])
"""Seconds from the grant until a lot becomes spendable (None: at once)."""
BREAKAGE = "breakage"


@dataclass
class ModelLot:
    id: str
    owner: str
    remaining: int
    expires_at: datetime | None
    available_at: datetime | None

    def spendable(self, now: datetime) -> bool:
        return (self.available_at is None or self.available_at <= now) and (
            self.expires_at is None or self.expires_at > now
        )

    def order(self) -> tuple[bool, datetime | None, str]:
        """The spend order: soonest expiry first, then no expiry; by id within a moment."""
        return (self.expires_at is None, self.expires_at, self.id)


@dataclass
class ModelHold:
    sender: str
    receiver: str
    amount: int
    expires_at: datetime
    status: HoldStatus = HoldStatus.PENDING
    moves: Moves | None = None


@dataclass
class ModelStake:
    user: str
    amount: int
    reward: int
    unlock_at: datetime
    released: bool = False
    moves: Moves | None = None


@dataclass(frozen=True)
class ModelTransfer:
    id: str
    sender: str
    receiver: str
    amount: int
    moves: tuple[tuple[str, int], ...] = ()


class LedgerMachine(RuleBasedStateMachine):
    backend: ClassVar[BoundBackend]

    holds = Bundle("holds")
    stakes = Bundle("stakes")
    transfers = Bundle("transfers")
    irreversible = Bundle("irreversible")

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.clock = ManualClock()
        settings = self.backend.settings(
            symbol=unique("m"), decimals=DECIMALS, initial_supply=tokens(INITIAL), max_supply=tokens(MAX_SUPPLY),
            ledger_group="model",
        )  # fmt: skip
        self.bank = TokenBank(settings, clock=self.clock)
        self.run(self.bank.open())
        self.gems: TokenBank | None = None
        self.gem_balance = dict.fromkeys(ACCOUNTS, 0)
        self.gem_balance["treasury"] = GEMS
        if self.backend.persistent:
            gem_settings = self.backend.settings(
                symbol=unique("g"), decimals=0, initial_supply=GEMS, ledger_group="model"
            )
            self.gems = TokenBank(gem_settings, clock=self.clock)
            self.run(self.gems.open())
        self.balance = dict.fromkeys((*ACCOUNTS, BREAKAGE), 0)  # the whole balance, lots included
        self.balance["treasury"] = INITIAL
        self.lots: dict[str, ModelLot] = {}
        self.held = dict.fromkeys((*ACCOUNTS, BREAKAGE), 0)
        self.supply = INITIAL
        self.model_holds: dict[str, ModelHold] = {}
        self.model_stakes: dict[str, ModelStake] = {}
        self.reversed: set[str] = set()
        self.frozen_debits: set[str] = set()
        self.frozen_credits: set[str] = set()
        self.frozen_until: dict[str, datetime] = {}
        self.max_balance: dict[str, int] = {}
        self.overdraft: dict[str, int] = {}
        self.window: dict[str, tuple[int, int]] = {}  # account -> (what its window may spend, its seconds)
        self.spends: list[tuple[str, datetime, int]] = []  # (account, when, amount) of each counted debit

    def frozen(self, account: str | None, directions: set[str]) -> bool:
        until = self.frozen_until.get(account or "")
        return account in directions and (until is None or until > self.clock.now())

    def spent(self, account: str) -> int:
        """What the account's window holds now: its counted debits of the window's last seconds (one made exactly
        that long ago has left)."""
        start = self.clock.now() - timedelta(seconds=self.window[account][1])
        return sum(amount for who, when, amount in self.spends if who == account and when > start)

    def spend(self, account: str, amount: int) -> None:
        """A counted debit (transfer, burn, hold) applied: the account's window holds it if it has one."""
        if account in self.window:
            self.spends.append((account, self.clock.now(), amount))

    def short(self, account: str, amount: int, balance: dict[str, int] | None = None) -> bool:
        """Whether debiting ``amount`` would take what the account can spend (its balance less its locked lots)
        below zero, or below minus its overdraft."""
        balance = self.balance if balance is None else balance
        return balance[account] - self.locked(account) - amount < -self.overdraft.get(account, 0)

    def locked(self, account: str) -> int:
        """What the account's lots hold that cannot be spent now (not yet available, or expired)."""
        now = self.clock.now()
        return sum(lot.remaining for lot in self.lots.values() if lot.owner == account and not lot.spendable(now))

    def open_lots(self, account: str) -> list[ModelLot]:
        return sorted((lot for lot in self.lots.values() if lot.owner == account and lot.remaining > 0),
                      key=ModelLot.order)  # fmt: skip

    def take(self, account: str, amount: int) -> Moves:
        """A debit's lot moves: its spendable lots in spend order, each up to what is still needed."""
        now, moves = self.clock.now(), []
        for lot in self.open_lots(account):
            if amount == 0:
                break
            if lot.spendable(now):
                part = min(lot.remaining, amount)
                lot.remaining -= part
                amount -= part
                moves.append((lot.id, part))
        return moves

    def give_back(self, moves: Moves, amount: int) -> Moves:
        """A release of ``amount`` of a hold that took ``moves``: the last lot taken first (negative moves)."""
        back = []
        for lot_id, part in reversed(moves):
            if amount == 0:
                break
            share = min(part, amount)
            self.lots[lot_id].remaining += share
            amount -= share
            back.append((lot_id, -share))
        return back

    def controls_refuse(
        self,
        debit: str | None,
        credit: str | None,
        amount: int,
        balance: dict[str, int] | None = None,
        *,
        counted: bool = True,
        pending: int = 0,
    ) -> type[TokenBankError] | None:
        """What the accounts' controls refuse, checked before anything else, in the stores' order. ``counted``:
        the debit counts in the debited account's spend window (a reversal does not); ``pending``: what earlier
        items of the same call added to that window."""
        balance = self.balance if balance is None else balance
        if self.frozen(debit, self.frozen_debits) or self.frozen(credit, self.frozen_credits):
            return AccountFrozenError
        if counted and debit in self.window and self.spent(debit) + pending + amount > self.window[debit][0]:
            return LimitExceededError
        if credit in self.max_balance and balance[credit] + amount > self.max_balance[credit]:
            return LimitExceededError
        return None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def refused(self, coro: Coroutine[Any, Any, object], error: type[TokenBankError]) -> None:
        with pytest.raises(TokenBankError) as caught:
            self.run(coro)
        assert type(caught.value) is error, f"expected {error.__name__}, got {caught.value!r}"

    # plain transfers, mints, burns ----------------------------------------------------------------------
    @rule(target=transfers, sender=accounts, receiver=accounts, amount=units, form=forms)
    def transfer(self, sender: str, receiver: str, amount: int, form: str) -> Any:
        call = self.bank.transfer(sender, receiver, as_input(amount, form))
        if sender == receiver:
            self.refused(call, InvalidAccountError)
            return multiple()
        if refusal := self.controls_refuse(sender, receiver, amount):
            self.refused(call, refusal)
            return multiple()
        if self.short(sender, amount):
            self.refused(call, InsufficientBalanceError)
            return multiple()
        tx = self.run(call)
        assert (tx.from_user_id, tx.to_user_id, tx.amount) == (sender, receiver, tokens(amount))
        moves = self.take(sender, amount)
        assert _moves(tx) == moves
        self.balance[sender] -= amount
        self.balance[receiver] += amount
        self.spend(sender, amount)
        return ModelTransfer(tx.id, sender, receiver, amount, tuple(moves))

    @rule(target=irreversible, receiver=accounts, amount=units, form=forms)
    def mint(self, receiver: str, amount: int, form: str) -> Any:
        call = self.bank.mint(receiver, as_input(amount, form))
        if refusal := self.controls_refuse(None, receiver, amount):
            self.refused(call, refusal)
            return multiple()
        if self.supply + amount > MAX_SUPPLY:
            self.refused(call, SupplyCapExceededError)
            return multiple()
        tx = self.run(call)
        self.balance[receiver] += amount
        self.supply += amount
        return tx.id

    @rule(target=irreversible, sender=accounts, amount=units)
    def burn(self, sender: str, amount: int) -> Any:
        call = self.bank.burn(sender, tokens(amount))
        if refusal := self.controls_refuse(sender, None, amount):
            self.refused(call, refusal)
            return multiple()
        if self.short(sender, amount):
            self.refused(call, InsufficientBalanceError)
            return multiple()
        tx = self.run(call)
        assert _moves(tx) == self.take(sender, amount)
        self.balance[sender] -= amount
        self.supply -= amount
        self.spend(sender, amount)
        return tx.id

    @rule(
        atomic=st.booleans(),
        items=st.lists(st.tuples(accounts, accounts, st.integers(1, 30_00)), min_size=1, max_size=4),
    )
    def transfer_many(self, atomic: bool, items: list[tuple[str, str, int]]) -> None:
        requests = [TransferRequest(s, r, tokens(a)) for s, r, a in items]
        results = self.run(self.bank.transfer_many(requests, atomic=atomic))
        balance = dict(self.balance)
        expected: list[type[TokenBankError] | None] = []
        applied: list[tuple[str, int]] = []
        for sender, receiver, amount in items:
            pending = sum(units for who, units in applied if who == sender)
            if sender == receiver:
                expected.append(InvalidAccountError)
            elif refusal := self.controls_refuse(sender, receiver, amount, balance, pending=pending):
                expected.append(refusal)
            elif self.short(sender, amount, balance):
                expected.append(InsufficientBalanceError)
            else:
                expected.append(None)
                balance[sender] -= amount
                balance[receiver] += amount
                applied.append((sender, amount))
        if atomic and any(expected):
            invalid: list[type[TokenBankError] | None] = [e if e is InvalidAccountError else None for e in expected]
            if any(invalid):  # refused before reaching the store: each invalid item keeps its own error
                expected = [e or BatchAbortedError for e in invalid]
            else:  # the store stops at the first failure
                first = next(i for i, e in enumerate(expected) if e)
                expected = [expected[first] if i == first else BatchAbortedError for i in range(len(items))]
            balance, applied = self.balance, []
        assert [type(r.error) if r.error else None for r in results] == expected
        self.balance = balance
        for sender, amount in applied:
            self.take(sender, amount)
            self.spend(sender, amount)

    @rule(
        target=transfers,
        sender=accounts,
        amount=units,
        legs=st.lists(st.tuples(accounts, st.sampled_from(SHARES)), min_size=1, max_size=3),
        remainder_to=st.none() | accounts,
    )
    def split(self, sender: str, amount: int, legs: list[tuple[str, str]], remainder_to: str | None) -> Any:
        call = self.bank.transfer_split(sender, tokens(amount), legs, remainder_to=remainder_to)
        receivers = [receiver for receiver, _ in legs]
        if sender in (*receivers, remainder_to) or len(set(receivers)) < len(receivers):
            self.refused(call, InvalidAccountError)
            return multiple()
        percent = sum(Decimal(share[:-1]) for _, share in legs if share.endswith("%"))
        fixed = sum(int(Decimal(share).scaleb(DECIMALS)) for _, share in legs if not share.endswith("%"))
        if percent > 100 or fixed + amount * percent / 100 > amount:
            self.refused(call, InvalidAmountError)
            return multiple()
        # One atomic batch of a transfer per leg (as the split plans them): the first leg refused, by the
        # accounts' controls or by the balance left, refuses the split.
        balance = dict(self.balance)
        plan = plan_split(sender, tokens(amount), legs, remainder_to, None, None, None, DECIMALS)
        for number, leg in enumerate(plan.legs):
            pending = sum(earlier.units for earlier in plan.legs[:number])
            refusal = self.controls_refuse(sender, leg.to_user_id, leg.units, balance, pending=pending)
            if refusal is None and self.short(sender, leg.units, balance):
                refusal = InsufficientBalanceError
            if refusal is not None:
                self.refused(call, refusal)
                return multiple()
            balance[sender] -= leg.units
            balance[leg.to_user_id] += leg.units
        txs = self.run(call)
        assert sum(tx.amount for tx in txs) == tokens(amount) and len({tx.split_id for tx in txs}) == 1
        moved = []
        for tx in txs:
            assert tx.from_user_id == sender and tx.to_user_id is not None
            leg_units = int(tx.amount.scaleb(DECIMALS))
            moves = self.take(sender, leg_units)
            assert _moves(tx) == moves
            self.balance[sender] -= leg_units
            self.balance[tx.to_user_id] += leg_units
            self.spend(sender, leg_units)
            moved.append(ModelTransfer(tx.id, sender, tx.to_user_id, leg_units, tuple(moves)))
        return multiple(*moved)

    @precondition(lambda self: self.gems is not None)
    # The treasury holds the gems at first: it is the counterparty twice as often as another account.
    @rule(user=accounts, counterparty=st.sampled_from(("treasury", *ACCOUNTS)), amount=units, gems=st.integers(1, 120))
    def exchange(self, user: str, counterparty: str, amount: int, gems: int) -> None:
        """The user pays coins to the counterparty for gems, both or neither. The stores apply the legs in the
        order of the symbols (gems, "g...", before coins, "m..."): the first refused leg in that order reports."""
        assert self.gems is not None
        call = exchange((self.bank, user, tokens(amount)), (self.gems, counterparty, gems))
        if user == counterparty:
            self.refused(call, InvalidAccountError)
            return
        if self.gem_balance[counterparty] < gems:
            self.refused(call, InsufficientBalanceError)
            return
        if refusal := self.controls_refuse(user, counterparty, amount):
            self.refused(call, refusal)
            return
        if self.short(user, amount):
            self.refused(call, InsufficientBalanceError)
            return
        done = self.run(call)
        assert (done.pay.from_user_id, done.pay.amount, done.receive.to_user_id, done.receive.amount) == (
            user, tokens(amount), user, gems,
        )  # fmt: skip
        assert _moves(done.pay) == self.take(user, amount)
        self.balance[user] -= amount
        self.balance[counterparty] += amount
        self.spend(user, amount)
        self.gem_balance[counterparty] -= gems
        self.gem_balance[user] += gems

    # holds ----------------------------------------------------------------------------------------------
    @rule(target=holds, sender=accounts, receiver=accounts, amount=units)
    def hold(self, sender: str, receiver: str, amount: int) -> Any:
        call = self.bank.hold(sender, receiver, tokens(amount), expires_in=HOLD_SECONDS)
        if sender == receiver:
            self.refused(call, InvalidAccountError)
            return multiple()
        if refusal := self.controls_refuse(sender, None, amount):
            self.refused(call, refusal)
            return multiple()
        if self.short(sender, amount):
            self.refused(call, InsufficientBalanceError)
            return multiple()
        hold = self.run(call)
        expires_at = self.clock.now() + timedelta(seconds=HOLD_SECONDS)
        assert hold.status is HoldStatus.PENDING and hold.amount == tokens(amount) and hold.expires_at == expires_at
        self.balance[sender] -= amount
        self.held[sender] += amount
        self.spend(sender, amount)
        self.model_holds[hold.id] = ModelHold(sender, receiver, amount, expires_at, moves=self.take(sender, amount))
        return hold.id

    def _release(self, hold: ModelHold, captured: int, status: HoldStatus) -> None:
        self.give_back(hold.moves or [], hold.amount - captured)
        self.held[hold.sender] -= hold.amount
        self.balance[hold.sender] += hold.amount - captured
        self.balance[hold.receiver] += captured
        hold.status = status

    @rule(hold_id=holds, part=st.none() | st.integers(1, 60_00))
    def capture(self, hold_id: str, part: int | None) -> None:
        hold = self.model_holds[hold_id]
        call = self.bank.capture(hold_id, None if part is None else tokens(part))
        if hold.status is not HoldStatus.PENDING:
            self.refused(call, HoldStateError)
        elif refusal := self.controls_refuse(None, hold.receiver, hold.amount if part is None else part):
            self.refused(call, refusal)
        elif hold.expires_at <= self.clock.now():  # expired, not swept yet
            self.refused(call, HoldStateError)
        elif part is not None and part > hold.amount:
            self.refused(call, InvalidAmountError)
        else:
            captured = hold.amount if part is None else part
            result = self.run(call)
            assert result.status is HoldStatus.CAPTURED and result.captured_amount == tokens(captured)
            self._release(hold, captured, HoldStatus.CAPTURED)

    @rule(hold_id=holds)
    def void(self, hold_id: str) -> None:
        hold = self.model_holds[hold_id]
        call = self.bank.void(hold_id)
        if hold.status is not HoldStatus.PENDING:
            self.refused(call, HoldStateError)
            return
        assert self.run(call).status is HoldStatus.VOIDED
        self._release(hold, 0, HoldStatus.VOIDED)

    @rule()
    def sweep(self) -> None:
        """The expiry sweep at the clock's time: exactly the pending holds whose expiry has come are voided."""
        now = self.clock.now()
        due = [h for h in self.model_holds.values() if h.status is HoldStatus.PENDING and h.expires_at <= now]
        assert self.run(self.bank.expire_holds()) == len(due)
        for hold in due:
            self._release(hold, 0, HoldStatus.VOIDED)

    # staking --------------------------------------------------------------------------------------------
    @rule(target=stakes, user=accounts, amount=units, seconds=st.sampled_from([30, 60, 3600]),
          reward=st.sampled_from([0, 1, 5_00, 200_00]))  # fmt: skip
    def stake(self, user: str, amount: int, seconds: int, reward: int) -> Any:
        """A stake is refused as a hold from the account would be; it holds the amount out of the balance."""
        unlock_at = self.clock.now() + timedelta(seconds=seconds)
        call = self.bank.stake(user, tokens(amount), until=unlock_at, reward=tokens(reward))
        if refusal := self.controls_refuse(user, None, amount):
            self.refused(call, refusal)
            return multiple()
        if self.short(user, amount):
            self.refused(call, InsufficientBalanceError)
            return multiple()
        stake = self.run(call)
        assert (stake.amount, stake.reward, stake.unlock_at) == (tokens(amount), tokens(reward), unlock_at)
        self.balance[user] -= amount
        self.held[user] += amount
        self.spend(user, amount)
        self.model_stakes[stake.id] = ModelStake(user, amount, reward, unlock_at, moves=self.take(user, amount))
        return stake.id

    @rule(stake_id=stakes)
    def unstake(self, stake_id: str) -> None:
        """Refused before the unlock time, by the owner's credit controls or a reward past the cap (then nothing
        changes); else the amount comes back with the reward minted, once: a second unstake replays. A void of the
        stake's hold is always refused."""
        stake = self.model_stakes[stake_id]
        self.refused(self.bank.void(stake_id), HoldStateError)
        call = self.bank.unstake(stake_id)
        if stake.released:
            assert self.run(call).replayed
            return
        after_void = {**self.balance, stake.user: self.balance[stake.user] + stake.amount}
        if self.clock.now() < stake.unlock_at:
            self.refused(call, StakeLockedError)
        elif stake.reward and (refusal := self.controls_refuse(None, stake.user, stake.reward, after_void)):
            self.refused(call, refusal)
        elif self.supply + stake.reward > MAX_SUPPLY:
            self.refused(call, SupplyCapExceededError)
        else:
            released = self.run(call)
            assert released.status is StakeStatus.RELEASED and not released.replayed
            self.give_back(stake.moves or [], stake.amount)
            self.balance[stake.user] += stake.amount + stake.reward
            self.held[stake.user] -= stake.amount
            self.supply += stake.reward
            stake.released = True

    # credit lots ----------------------------------------------------------------------------------------
    @rule(receiver=accounts, amount=units, funder=st.none() | accounts, expiry=LOT_EXPIRIES, delay=LOT_DELAYS)
    def grant(self, receiver: str, amount: int, funder: str | None, expiry: int | None, delay: int | None) -> None:
        """A lot minted (within the cap) or paid by ``funder`` (a debit like a transfer's), refused as a mint or a
        transfer would be; it is spendable from ``delay`` until ``expiry`` seconds from now."""
        now = self.clock.now()
        expires_at = None if expiry is None else now + timedelta(seconds=expiry)
        available_at = None if delay is None else now + timedelta(seconds=delay)
        call = self.bank.grant(receiver, tokens(amount), expires_at=expires_at, available_at=available_at,
                               from_user_id=funder)  # fmt: skip
        if funder == receiver or (expires_at and available_at and available_at >= expires_at):
            self.refused(call, InvalidRequestError)
            return
        if refusal := self.controls_refuse(funder, receiver, amount):
            self.refused(call, refusal)
            return
        if funder is None and self.supply + amount > MAX_SUPPLY:
            self.refused(call, SupplyCapExceededError)
            return
        if funder is not None and self.short(funder, amount):
            self.refused(call, InsufficientBalanceError)
            return
        tx = self.run(call)
        assert (tx.from_user_id, tx.to_user_id, tx.amount, tx.expires_at, tx.available_at) == (
            funder, receiver, tokens(amount), expires_at, available_at,
        )  # fmt: skip
        if funder is None:
            self.supply += amount
        else:
            assert _moves(tx) == self.take(funder, amount)
            self.balance[funder] -= amount
            self.spend(funder, amount)
        self.balance[receiver] += amount
        self.lots[tx.id] = ModelLot(tx.id, receiver, amount, expires_at, available_at)

    @rule()
    def expire_lots(self) -> None:
        """The lot sweep at the clock's time: exactly the expired remainders move to the breakage account."""
        now = self.clock.now()
        due = [lot for lot in self.lots.values() if lot.remaining and lot.expires_at and lot.expires_at <= now]
        assert self.run(self.bank.expire_lots()) == len(due)
        for lot in due:
            self.balance[lot.owner] -= lot.remaining
            self.balance[BREAKAGE] += lot.remaining
            lot.remaining = 0

    # time -----------------------------------------------------------------------------------------------
    @rule(seconds=steps)
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    # reversals ------------------------------------------------------------------------------------------
    @rule(tx=transfers)
    def reverse(self, tx: ModelTransfer) -> None:
        call = self.bank.reverse(tx.id, reason="model")
        if tx.id in self.reversed:
            self.refused(call, TransactionStateError)
        elif refusal := self.controls_refuse(tx.receiver, tx.sender, tx.amount, counted=False):
            self.refused(call, refusal)
        elif self.short(tx.receiver, tx.amount):
            self.refused(call, InsufficientBalanceError)
        else:
            reversal = self.run(call)
            assert (reversal.from_user_id, reversal.to_user_id, reversal.reverses_id) == (tx.receiver, tx.sender, tx.id)
            taken = self.take(tx.receiver, tx.amount)
            for lot_id, part in tx.moves:  # the sender gets back exactly what the transfer took from its lots
                self.lots[lot_id].remaining += part
            assert _moves(reversal) == [*taken, *((lot_id, -part) for lot_id, part in tx.moves)]
            self.balance[tx.receiver] -= tx.amount
            self.balance[tx.sender] += tx.amount
            self.reversed.add(tx.id)

    @rule(tx_id=irreversible)
    def reverse_mint_or_burn(self, tx_id: str) -> None:
        self.refused(self.bank.reverse(tx_id, reason="model"), TransactionStateError)

    # account controls -----------------------------------------------------------------------------------
    @rule(
        account=accounts,
        direction=st.sampled_from(["debits", "credits", "both"]),
        lasts=st.none() | st.sampled_from([30, 60]),
    )
    def freeze(self, account: str, direction: str, lasts: int | None) -> None:
        """A freeze for good, or until ``lasts`` seconds from now (it holds while the clock is before that)."""
        debits, credits = direction != "credits", direction != "debits"
        until = None if lasts is None else self.clock.now() + timedelta(seconds=lasts)
        info = self.run(self.bank.freeze(account, debits=debits, credits=credits, reason="model", until=until))
        assert info.frozen is not None and (info.frozen.debits, info.frozen.credits) == (debits, credits)
        self.frozen_debits.discard(account)
        self.frozen_credits.discard(account)
        self.frozen_until.pop(account, None)
        if debits:
            self.frozen_debits.add(account)
        if credits:
            self.frozen_credits.add(account)
        if until is not None:
            self.frozen_until[account] = until

    @rule(account=accounts)
    def unfreeze(self, account: str) -> None:
        assert self.run(self.bank.unfreeze(account)).frozen is None
        self.frozen_debits.discard(account)
        self.frozen_credits.discard(account)
        self.frozen_until.pop(account, None)

    @rule(account=accounts, maximum=st.none() | st.integers(1, 200_00), overdraft=st.none() | st.integers(0, 50_00))
    def set_limits(self, account: str, maximum: int | None, overdraft: int | None) -> None:
        """Both limits replaced at once (a limit left out is removed; the spend window is passed on as it is); an
        overdraft of 0 is none. A change that leaves the account owing more than its new overdraft is refused and
        changes nothing."""
        call = self.bank.set_limits(
            account,
            max_balance=None if maximum is None else tokens(maximum),
            overdraft=None if overdraft is None else tokens(overdraft),
            spend_per_window=self._window_of(account),
        )
        if self.balance[account] < -(overdraft or 0):
            self.refused(call, TransactionStateError)
            return
        info = self.run(call)
        assert info.max_balance == (None if maximum is None else tokens(maximum))
        assert info.overdraft == (tokens(overdraft) if overdraft else None)
        if maximum is None:
            self.max_balance.pop(account, None)
        else:
            self.max_balance[account] = maximum
        if overdraft:
            self.overdraft[account] = overdraft
        else:
            self.overdraft.pop(account, None)

    def _window_of(self, account: str) -> tuple[Decimal, int] | None:
        if account not in self.window:
            return None
        amount, seconds = self.window[account]
        return tokens(amount), seconds

    @rule(account=accounts, amount=st.none() | st.integers(1, 80_00), seconds=WINDOWS)
    def set_window(self, account: str, amount: int | None, seconds: int) -> None:
        """Give the account a spend window, change its amount or length, or remove it (None), its other limits
        passed on as they are. The spends it counts are those made while it had one; a change forgets those that
        had left the window in force until then, a removal all of them."""
        maximum, overdraft = self.max_balance.get(account), self.overdraft.get(account)
        info = self.run(self.bank.set_limits(
            account,
            max_balance=None if maximum is None else tokens(maximum),
            overdraft=None if overdraft is None else tokens(overdraft),
            spend_per_window=None if amount is None else (tokens(amount), seconds),
        ))  # fmt: skip
        if account in self.window:
            kept = self.clock.now() - timedelta(seconds=self.window[account][1])
            self.spends = [(who, when, spent) for who, when, spent in self.spends
                           if who != account or (amount is not None and when > kept)]  # fmt: skip
        if amount is None:
            self.window.pop(account, None)
            assert info.spend_limit is None and info.spent_in_window == 0
            return
        self.window[account] = (amount, seconds)
        assert info.spend_limit is not None and info.spent_in_window == tokens(self.spent(account))

    @precondition(lambda self: bool(self.window))
    @rule(data=st.data(), seconds=WINDOWS)
    def resize_window(self, data: st.DataObject, seconds: int) -> None:
        """The length of a window changed, its amount kept: lengthened, it must not count again what had left it."""
        account = data.draw(st.sampled_from(sorted(self.window)))
        self.set_window(account, self.window[account][0], seconds)

    # checks ---------------------------------------------------------------------------------------------
    @invariant()
    def ledger_matches_model(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        bank = self.bank
        assert sum(self.balance.values()) + sum(self.held.values()) == self.supply  # the model itself conserves
        assert all(v >= -self.overdraft.get(a, 0) for a, v in self.balance.items())  # signed, down to -L
        assert all(v >= 0 for v in self.held.values())
        assert all(lot.remaining >= 0 for lot in self.lots.values())
        spendable = {a: tokens(v - self.locked(a)) for a, v in self.balance.items()}
        assert await bank.get_balances(list(self.balance)) == spendable
        for account in ACCOUNTS:
            lots = [(lot.id, lot.amount) for lot in await bank.get_lots(account)]
            assert lots == [(lot.id, tokens(lot.remaining)) for lot in self.open_lots(account)], account
        for account in ACCOUNTS:
            assert await bank.get_held_balance(account) == tokens(self.held[account]), account
        assert await bank.get_total_supply() == tokens(self.supply)
        treasury = self.balance["treasury"] + self.held["treasury"]
        assert await bank.get_circulating_supply() == tokens(self.supply - treasury)
        ranked = sorted(((-v, a) for a, v in self.balance.items() if v > 0 and a != "treasury"))
        top = await bank.get_top_holders()
        assert [(h.user_id, h.balance) for h in top] == [(a, tokens(-v)) for v, a in ranked]
        for account in self.window:
            assert (await bank.get_account(account)).spent_in_window == tokens(self.spent(account)), account
        if self.gems is not None:
            assert await self.gems.get_balances(list(ACCOUNTS)) == {a: Decimal(v) for a, v in self.gem_balance.items()}
            assert await self.gems.get_total_supply() == GEMS

    def teardown(self) -> None:
        try:
            for bank in (self.bank, self.gems):
                if bank is not None:
                    report = self.run(bank.verify())
                    assert report.ok, report
        finally:
            if self.gems is not None:
                self.run(self.gems.close())
            self.run(self.bank.close())
            self.runner.close()


def _moves(tx: Transaction) -> Moves:
    """A transaction's lot moves in base units."""
    return [(move.lot_id, int(move.amount.scaleb(DECIMALS))) for move in tx.lot_moves]


def test_ledger_matches_the_model(backend: BoundBackend) -> None:
    machine = type(f"Ledger_{backend.name.replace('-', '_')}", (LedgerMachine,), {"backend": backend})
    run_state_machine_as_test(machine)
