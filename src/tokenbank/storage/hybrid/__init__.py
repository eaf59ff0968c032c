"""Hybrid mode: Redis on the hot path, PostgreSQL as the ledger of record (see docs/hybrid.md)."""
