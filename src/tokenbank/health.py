"""Health of a bank: can its store be reached, is its token there, do its settings agree with the stored token,
and what the store adds (sync lag...).

``status`` is the worst of the checks: ``ok``, ``degraded`` (serving, with a problem to look at) or ``down``
(cannot serve). A store may contribute checks of its own by declaring the
:class:`~tokenbank.storage.capabilities.HealthChecks` capability (the hybrid store reports its sync backlog and lag
that way).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tokenbank.errors import TokenBankError
from tokenbank.storage.capabilities import HealthCheck, HealthChecks, HealthStatus
from tokenbank.token_config import find_drift

if TYPE_CHECKING:
    from tokenbank.settings import Settings
    from tokenbank.storage.base import Storage

CHECK_TIMEOUT = 2.0
"""Seconds each check may take before it counts as failed."""

_RANK: dict[HealthStatus, int] = {"ok": 0, "degraded": 1, "down": 2}


class Probed(Protocol):
    """What a health check reads: the store, the settings and which of them were given (a bank or its ledger)."""

    @property
    def storage(self) -> Storage: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def given_settings(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Result of :func:`check_health`: the overall status and every check behind it."""

    status: HealthStatus
    checks: tuple[HealthCheck, ...]

    @property
    def ok(self) -> bool:
        """True unless the bank is down (``degraded`` still serves)."""
        return self.status != "down"

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "checks": [check.as_dict() for check in self.checks]}


def worst(statuses: Iterable[HealthStatus]) -> HealthStatus:
    """The most severe status (``ok`` for none)."""
    return max(statuses, key=_RANK.__getitem__, default="ok")


async def check_health(bank: Probed, *, time_limit: float = CHECK_TIMEOUT) -> HealthReport:
    """Probe the bank's store (each probe bounded by ``time_limit`` seconds). Never raises for a failing store:
    a failure is a ``down`` or ``degraded`` check in the report."""
    storage = bank.storage
    checks: list[HealthCheck] = []
    ping = await _probe("storage", storage.ping, time_limit, failure="down")
    checks.append(ping)
    if ping.status == "ok":
        checks.extend(await _token_checks(bank, time_limit))
    else:
        checks.append(HealthCheck("token", "down", "not checked: the store does not answer"))
    if isinstance(storage, HealthChecks) and ping.status == "ok":
        checks.extend(await _store_checks(storage.health_checks, time_limit))
    return HealthReport(worst(check.status for check in checks), tuple(checks))


async def _token_checks(bank: Probed, time_limit: float) -> list[HealthCheck]:
    """``token``: the token exists; ``settings`` (only when some disagree): given settings that the stored token
    overrides, ``degraded`` because whoever set them believes in values the ledger does not use."""
    started = time.perf_counter()
    try:
        token = await asyncio.wait_for(bank.storage.get_token(), time_limit)
    except Exception as exc:
        return [HealthCheck("token", "down", _describe(exc, time_limit), _ms(started))]
    symbol = bank.settings.symbol
    if token is None:
        return [HealthCheck("token", "down", f"token {symbol} is not initialized", _ms(started))]
    checks = [HealthCheck("token", "ok", f"token {symbol} initialized", _ms(started))]
    drift = find_drift(bank.settings, bank.given_settings, token)
    if drift:
        detail = "ignored, the stored token decides: " + "; ".join(d.describe() for d in drift)
        checks.append(HealthCheck("settings", "degraded", detail))
    return checks


async def _store_checks(extra: Callable[[], Awaitable[Iterable[HealthCheck]]], time_limit: float) -> list[HealthCheck]:
    started = time.perf_counter()
    try:
        found = await asyncio.wait_for(extra(), time_limit)
        return [check for check in found if isinstance(check, HealthCheck)]
    except Exception as exc:
        # The store answered its ping: failing extra checks (sync lag...) degrade, they do not take it down.
        return [HealthCheck("storage.extra", "degraded", _describe(exc, time_limit), _ms(started))]


async def _probe(
    name: str, probe: Callable[[], Awaitable[object]], time_limit: float, *, failure: HealthStatus
) -> HealthCheck:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), time_limit)
    except Exception as exc:
        return HealthCheck(name, failure, _describe(exc, time_limit), _ms(started))
    return HealthCheck(name, "ok", "", _ms(started))


def _describe(exc: BaseException, time_limit: float) -> str:
    """A detail safe to show: tokenbank messages are written without secrets; driver messages may hold
    a URL, so only their type is shown."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {time_limit:g} s"
    if isinstance(exc, TokenBankError):
        return f"{exc.code}: {exc.message}"
    return type(exc).__name__


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


__all__ = ["CHECK_TIMEOUT", "HealthCheck", "HealthReport", "HealthStatus", "Probed", "check_health", "worst"]
