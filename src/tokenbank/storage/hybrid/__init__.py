"""Hybrid mode: Redis on the hot path, PostgreSQL as the ledger of record, and the sync between them (the
worker, backfill, reconcile and repair, rebuild-cache); see docs/hybrid.md."""
