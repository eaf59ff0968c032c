"""``tokenbank stake`` and ``tokenbank unstake``: lock an account's tokens until a date, then release them with a
reward minted on top."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from tokenbank.cli import render
from tokenbank.cli.ledger import Amount, AmountCommand, IdempotencyKey, JsonFlag, Metadata, Reason, _with_symbol, _write
from tokenbank.cli.runtime import state_of
from tokenbank.models import Stake

StakeId = Annotated[str, typer.Argument(metavar="STAKE_ID", help="The id the stake command printed.")]


def stake(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(metavar="USER", help="Account whose tokens are staked.")],
    amount: Amount,
    until: Annotated[
        datetime,
        typer.Option(
            "--until",
            metavar="TIME",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z"],
            help="When it unlocks, with its UTC offset, e.g. 2027-01-31T00:00:00+00:00.",
            show_default=False,
        ),
    ],
    reward: Annotated[
        str, typer.Option("--reward", help="Minted to USER at the unstake, within the max supply.", show_default=False)
    ] = "0",
    idempotency_key: IdempotencyKey = None,
    metadata: Metadata = None,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Lock AMOUNT of USER's tokens (held out of the balance) until --until; unstake then returns them with
    --reward minted on top (see docs/staking.md)."""
    shown = _write(
        ctx, amount, metadata,
        lambda bank, value, meta: bank.stake(user, value, until=until, reward=reward.strip(),
                                             idempotency_key=idempotency_key, metadata=meta, reason=reason),
    )  # fmt: skip
    _show(ctx, shown, as_json)


def unstake(ctx: typer.Context, stake_id: StakeId, reason: Reason = None, as_json: JsonFlag = False) -> None:
    """Release a stake at or after its unlock time: its tokens back to the owner, its reward minted."""
    state = state_of(ctx)
    _show(ctx, state.run(lambda bank: _with_symbol(bank, bank.unstake(stake_id, reason=reason))), as_json)


def stake_dict(item: Stake) -> dict[str, Any]:
    return {
        "id": item.id,
        "status": item.status.value,
        "user_id": item.user_id,
        "amount": render.plain(item.amount),
        "reward": render.plain(item.reward),
        "unlock_at": render.iso_time(item.unlock_at),
        "created_at": render.iso_time(item.created_at),
        "metadata": item.metadata,
        "replayed": item.replayed,
    }


def _show(ctx: typer.Context, shown: tuple[Stake, str], as_json: bool) -> None:
    item, symbol = shown
    if as_json:
        render.emit_json(stake_dict(item))
        return
    title = f"stake ({item.status.value}){' (replayed)' if item.replayed else ''}"
    amounts = {"amount": item.amount, "reward": item.reward}
    state_of(ctx).out.print(render.field_table(title, stake_dict(item), amounts, symbol))


def register(app: typer.Typer) -> None:
    app.command(cls=AmountCommand)(stake)
    app.command()(unstake)
