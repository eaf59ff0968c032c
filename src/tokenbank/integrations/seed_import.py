"""Migration from the seed's NestJS Redis layout (``token:info``, ``balance:{userId}``, ``balances:zset``,
``transactions``) into a tokenbank ledger of any storage mode.

Each seed balance becomes one mint to its account, idempotency key ``seed-import:<user>``, so an interrupted
import can simply be run again; one ``import.seed`` audit entry sums it up. The seed's ``transactions`` stream
is not replayed (its entries moved balances that are imported as they stand now); keep it or export it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from redis.asyncio import Redis

from tokenbank.amounts import from_base_units, to_base_units
from tokenbank.bank import TokenBank
from tokenbank.errors import InvalidAmountError, TokenBankError
from tokenbank.ids import check_account_id
from tokenbank.storage.base import OpKind

_BATCH = 500


@dataclass
class SeedImportReport:
    accounts: int = 0
    imported_units: int = 0
    replayed: int = 0
    skipped_zero: int = 0
    seed_total_supply: str | None = None
    errors: list[str] = field(default_factory=list)


async def read_seed_balances(seed: Redis, *, prefix: str = "") -> tuple[dict[str, str], dict[str, str]]:
    """The seed's ``token:info`` hash and every ``balance:{userId}`` value, as stored (text)."""
    info = {_text(k): _text(v) for k, v in (await seed.hgetall(f"{prefix}token:info")).items()}
    pattern = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in f"{prefix}balance:") + "*"
    names = [_text(key) async for key in seed.scan_iter(match=pattern, count=1000)]
    balances: dict[str, str] = {}
    for start in range(0, len(names), 1000):
        chunk = names[start : start + 1000]
        async with seed.pipeline(transaction=False) as pipe:
            for name in chunk:
                pipe.get(name)
            values = await pipe.execute()
        for name, value in zip(chunk, values, strict=True):
            if value is not None:
                balances[name.removeprefix(f"{prefix}balance:")] = _text(value)
    return info, balances


async def import_seed_layout(
    bank: TokenBank, seed: Redis, *, prefix: str = "", amounts_in_base_units: bool = False
) -> SeedImportReport:
    """Copy the seed's balances into ``bank`` (open it with ``initial_supply=0``: the treasury's seed balance
    is imported like any other). Seed amounts are token amounts ("12.5") unless ``amounts_in_base_units``.
    Validates everything before the first write: any inexact or invalid amount or account id raises
    InvalidAmountError / InvalidAccountError and nothing is imported. Raises the store's errors."""
    info, balances = await read_seed_balances(seed, prefix=prefix)
    report = SeedImportReport(seed_total_supply=info.get("totalSupply") or info.get("total_supply"))
    planned: list[tuple[str, int]] = []
    for user, text in sorted(balances.items()):
        check_account_id(user)
        units = _units(text, bank.decimals, amounts_in_base_units, user)
        if units == 0:
            report.skipped_zero += 1
        else:
            planned.append((user, units))
    for start in range(0, len(planned), _BATCH):
        await _mint_batch(bank, planned[start : start + _BATCH], report)
    details = {"accounts": report.accounts, "amount": str(report.imported_units), "seed_total_supply":
               report.seed_total_supply, "replayed": report.replayed}  # fmt: skip
    await bank.storage.append_audit("import.seed", json.dumps(details, sort_keys=True))
    return report


async def _mint_batch(bank: TokenBank, batch: Sequence[tuple[str, int]], report: SeedImportReport) -> None:
    # OpBuilder.op takes a token amount (it converts to base units itself), so the planned base units go back
    # to a token amount first: exact, whatever the decimals.
    ops = [
        bank.ledger.ops.op(
            OpKind.MINT, from_base_units(units, bank.decimals), f"seed-import:{user}"[:128], None,
            "import from seed layout", to_user_id=user,
        )
        for user, units in batch
    ]  # fmt: skip
    for (user, units), result in zip(batch, await bank.storage.apply(ops), strict=True):
        if result.status.ok:
            report.accounts += 1
            report.imported_units += units
            report.replayed += result.status.name == "REPLAYED"
        else:
            report.errors.append(f"{user}: {result.status.name}")


def _units(text: str, decimals: int, in_base_units: bool, user: str) -> int:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidAmountError(f"seed balance of {user!r} is not a number: {text!r}") from None
    if value == 0:
        return 0
    try:
        if in_base_units:
            if value != value.to_integral_value():
                raise InvalidAmountError("not a whole number of base units")
            return to_base_units(value.scaleb(-decimals), decimals)
        return to_base_units(value, decimals)
    except TokenBankError as exc:
        raise InvalidAmountError(f"seed balance of {user!r} ({text!r}) cannot be imported exactly: {exc}") from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
