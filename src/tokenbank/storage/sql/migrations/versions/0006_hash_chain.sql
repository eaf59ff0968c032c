-- Migration 0006 on PostgreSQL: the journal's immutability trigger lets the chain sealer set a NULL hash once.
-- This file is read by migration 0006 only: a later change to these objects belongs in a new file and migration.

-- tb_transactions_guard() -> trigger: refuses DELETE, and any UPDATE except filling a NULL hash with every other
-- column unchanged (the sealer hashes committed rows in seq order after the fact).
CREATE OR REPLACE FUNCTION tb_transactions_guard() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.hash IS NULL AND NEW.hash IS NOT NULL
            AND (to_jsonb(OLD) - 'hash') = (to_jsonb(NEW) - 'hash') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'tokenbank: % on % is refused: ledger history is immutable', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'TB002';
END;
$fn$;

DROP TRIGGER tb_transactions_immutable ON tb_transactions;

CREATE TRIGGER tb_transactions_immutable BEFORE UPDATE OR DELETE ON tb_transactions
    FOR EACH ROW EXECUTE FUNCTION tb_transactions_guard();
