"""What the hybrid store's maintenance operations report: reconcile and rebuild-cache. Amounts are base units."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AccountDrift:
    user_id: str
    redis_balance: int
    postgres_balance: int
    redis_held: int
    postgres_held: int


@dataclass
class ReconcileReport:
    """What :func:`reconcile` found (and, with ``repair``, fixed). Amounts are base units."""

    drained: bool
    backlog: int
    accounts_checked: int
    drifted: list[AccountDrift]
    redis_total_supply: int
    postgres_total_supply: int
    redis_transactions: int
    postgres_transactions: int
    missing_in_redis: list[str]
    """Transactions PostgreSQL has and Redis lacks (Redis lost them after they were synced), oldest first."""
    missing_in_postgres: list[str]
    """Transactions Redis has that never reached PostgreSQL (quarantined, or still in flight)."""
    transactions_compared: str
    """``full`` (every id on both sides) or ``sampled`` (counts equal: a random sample checked both ways)."""
    conflicts: int
    chain_mismatches: list[int] = field(default_factory=list)
    """Seqs whose PostgreSQL row does not hash to the hash Redis's chain gave that seq (see docs/chain.md)."""
    lot_mismatches: list[str] = field(default_factory=list)
    """Credit lots whose remainder (or owner) differs between the stores, by id."""
    repaired: bool = False
    repairs: list[str] = field(default_factory=list)

    @property
    def supply_drift(self) -> int:
        return self.redis_total_supply - self.postgres_total_supply

    @property
    def ok(self) -> bool:
        return not (
            self.drifted
            or self.supply_drift
            or self.missing_in_redis
            or self.missing_in_postgres
            or self.conflicts
            or self.chain_mismatches
            or self.lot_mismatches
        )


@dataclass(frozen=True, slots=True)
class RebuildReport:
    accounts: int
    transactions: int
    holds: int
    audit_entries: int
    trimmed_accounts: int
    """Accounts whose history index holds only their newest ``history_retention`` entries."""
    seconds: float
