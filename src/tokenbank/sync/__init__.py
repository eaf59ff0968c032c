"""Hybrid mode's sync between Redis (hot path) and PostgreSQL (ledger of record): worker, reconcile, rebuild."""
