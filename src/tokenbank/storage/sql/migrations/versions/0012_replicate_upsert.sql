-- Migration 0012 (hybrid sync), PostgreSQL only: tb_replicate_batch writes the accounts in the journal's own
-- statement, through their primary key, with no statement whose plan depends on the planner's statistics.
-- tb_replicate (0002) calls it unchanged. This file is read by migration 0012 only: a later change to this
-- function belongs in a new file and migration.
--
-- Same contract as 0007's version: inserts the entries it has not seen (by id), then applies the balance, held,
-- supply and hold-row changes of THOSE rows only, so a redelivered entry changes nothing. Locks are taken in one
-- global order (journal by seq, accounts by id, holds by id, token, sync state). What changed: the sync worker's
-- connection lives long and PL/pgSQL keeps each statement's plan; 0007 locked the accounts (SELECT ... WHERE
-- user_id = ANY (...) FOR UPDATE) and updated them (UPDATE ... FROM unnest(...)), and a plan made while the token
-- had few accounts, or while the table had no statistics, went on reading every account of the token for each
-- batch (a scan by token, or a hash join) as the accounts grew. Now the accounts are upserted in the INSERT's own
-- statement (INSERT ... ON CONFLICT (token, user_id) DO UPDATE, in account-id order: the conflict is found, and the
-- row locked, through the primary key whatever the statistics say); the rest is 0007's.
CREATE OR REPLACE FUNCTION tb_replicate_batch(p_token text, p_entries jsonb) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    v_count bigint;
    v_max bigint;
    v_last timestamptz;
    v_supply bigint;
    v_holds jsonb;
    v_users text[];
    v_held bigint[];
    v_seqname text;
BEGIN
    WITH e AS (
        SELECT * FROM jsonb_to_recordset(p_entries) AS x(
            seq bigint, id text, type text, from_user_id text, to_user_id text, amount bigint,
            from_balance_after bigint, to_balance_after bigint, created_at bigint, metadata text,
            idempotency_key text, request_hash text, reason text, hold_id text, reverses_id text)
    ), ins AS (
        INSERT INTO tb_transactions (seq, id, token, type, from_user_id, to_user_id, amount, from_balance_after,
                                     to_balance_after, created_at, metadata, idempotency_key, request_hash,
                                     reason, hold_id, reverses_id)
        OVERRIDING SYSTEM VALUE
        SELECT seq, id, p_token, type, from_user_id, to_user_id, amount, from_balance_after, to_balance_after,
               tb_from_us(created_at), metadata, idempotency_key, request_hash, reason, hold_id, reverses_id
        FROM e ORDER BY seq
        ON CONFLICT (id) DO NOTHING
        RETURNING seq, type, from_user_id, to_user_id, amount, hold_id, created_at
    ), d AS (
        -- each inserted row's change to its sender (balance, held) and to its receiver, summed per account
        SELECT v.u, sum(v.b)::bigint AS b, sum(v.h)::bigint AS h
        FROM ins, LATERAL (VALUES
            (ins.from_user_id,
             CASE ins.type WHEN 'void' THEN ins.amount WHEN 'capture' THEN 0 ELSE -ins.amount END,
             CASE ins.type WHEN 'hold' THEN ins.amount WHEN 'capture' THEN -ins.amount
                           WHEN 'void' THEN -ins.amount ELSE 0 END,
             ins.type IN ('transfer', 'burn', 'reversal', 'hold', 'capture', 'void')),
            (ins.to_user_id, ins.amount, 0, ins.type IN ('transfer', 'mint', 'capture', 'reversal'))
        ) AS v(u, b, h, applies)
        WHERE v.applies
        GROUP BY v.u
    ), acc AS (
        -- Every account the rows change, in id order: missing ones created with their changes, existing ones
        -- changed (one whose changes cancel out keeps its row version). A CHECK is tested on the row an upsert
        -- proposes, before the conflict, so a fall of held is left out here and applied below.
        INSERT INTO tb_accounts AS a (token, user_id, balance, held)
        SELECT p_token, u, b, greatest(h, 0) FROM d ORDER BY u COLLATE "C"
        ON CONFLICT (token, user_id) DO UPDATE SET balance = a.balance + excluded.balance,
                                                   held = a.held + excluded.held
            WHERE excluded.balance <> 0 OR excluded.held <> 0
    )
    SELECT s.n, s.top, s.last, s.supply, s.holds, f.users, f.held
        INTO v_count, v_max, v_last, v_supply, v_holds, v_users, v_held
        FROM (SELECT count(*) AS n, max(seq) AS top, max(created_at) AS last,
                     sum(CASE type WHEN 'mint' THEN amount WHEN 'burn' THEN -amount END)::bigint AS supply,
                     jsonb_agg(jsonb_build_object('type', type, 'amount', amount, 'hold_id', hold_id))
                         FILTER (WHERE hold_id IS NOT NULL) AS holds
              FROM ins) s,
             (SELECT array_agg(u ORDER BY u COLLATE "C") AS users, array_agg(h ORDER BY u COLLATE "C") AS held
              FROM d WHERE h < 0) f;
    IF v_count = 0 THEN
        RETURN 0;
    END IF;

    IF v_users IS NOT NULL THEN
        -- Accounts whose held falls (the settlement of a hold from an earlier batch), in id order: the fall is
        -- proposed as a positive amount and subtracted. Each one exists by now (created above if it was missing,
        -- at held 0, which the fall then takes below zero: the CHECK fails, as it did in 0007).
        INSERT INTO tb_accounts AS a (token, user_id, balance, held)
            SELECT p_token, x.u, 0, -x.h FROM unnest(v_users, v_held) AS x(u, h) ORDER BY x.u COLLATE "C"
            ON CONFLICT (token, user_id) DO UPDATE SET held = a.held - excluded.held;
    END IF;

    IF v_holds IS NOT NULL THEN
        -- One upsert per hold, whatever order its entries arrive in: a capture wins over a void (the release
        -- of a partial capture), and a later "hold" entry never takes a settled hold back to pending.
        WITH n AS (
            SELECT * FROM jsonb_to_recordset(v_holds) AS x(type text, amount bigint, hold_id text)
        ), g AS (
            SELECT hold_id, bool_or(type = 'capture') AS captured,
                   max(amount) FILTER (WHERE type = 'capture') AS captured_amount, bool_or(type = 'void') AS voided
            FROM n GROUP BY hold_id
        ), info AS (
            SELECT DISTINCT ON (x->>'hold_id') x->>'hold_id' AS hold_id, x->'hold' AS h
            FROM jsonb_array_elements(p_entries) x
            WHERE x ? 'hold' ORDER BY x->>'hold_id'
        ), up AS (
            INSERT INTO tb_holds AS t (id, token, from_user_id, to_user_id, amount, captured_amount, status,
                                       expires_at, created_at, metadata)
            SELECT g.hold_id, p_token, i.h->>'from_user_id', i.h->>'to_user_id', (i.h->>'amount')::bigint,
                   CASE WHEN g.captured THEN g.captured_amount ELSE 0 END,
                   CASE WHEN g.captured THEN 'captured' WHEN g.voided THEN 'voided' ELSE 'pending' END,
                   tb_from_us((i.h->>'expires_at')::bigint), tb_from_us((i.h->>'created_at')::bigint),
                   i.h->>'metadata'
            FROM g JOIN info i USING (hold_id) ORDER BY g.hold_id
            ON CONFLICT (id) DO UPDATE SET
                status = CASE WHEN excluded.status = 'captured' THEN 'captured'
                              WHEN excluded.status = 'voided' AND t.status = 'pending' THEN 'voided'
                              ELSE t.status END,
                captured_amount = CASE WHEN excluded.status = 'captured' THEN excluded.captured_amount
                                       ELSE t.captured_amount END
            RETURNING t.id
        )
        -- Settlements whose hold Redis no longer has (only after Redis lost data): update the row if present.
        UPDATE tb_holds t SET
            status = CASE WHEN g.captured THEN 'captured' WHEN t.status = 'pending' THEN 'voided' ELSE t.status END,
            captured_amount = CASE WHEN g.captured THEN g.captured_amount ELSE t.captured_amount END
        FROM g WHERE t.id = g.hold_id AND (g.captured OR g.voided)
            AND NOT EXISTS (SELECT 1 FROM info WHERE info.hold_id = g.hold_id);
    END IF;

    IF v_supply IS NOT NULL AND v_supply <> 0 THEN
        UPDATE tb_tokens SET total_supply = total_supply + v_supply WHERE symbol = p_token;
    END IF;

    INSERT INTO tb_sync_state AS s (token, applied, last_seq, last_created_at, updated_at)
        VALUES (p_token, v_count, v_max, v_last, now())
        ON CONFLICT (token) DO UPDATE SET applied = s.applied + excluded.applied,
            last_seq = greatest(s.last_seq, excluded.last_seq),
            last_created_at = greatest(s.last_created_at, excluded.last_created_at), updated_at = now();

    -- Keep the journal's own sequence ahead of every replicated seq, so that a sql-mode bank taking over
    -- this database later numbers its entries after them (the sequence is not transactional, hence the lock).
    v_seqname := pg_get_serial_sequence('tb_transactions', 'seq');
    IF v_max > coalesce(pg_sequence_last_value(v_seqname::regclass), 0) THEN
        PERFORM pg_advisory_xact_lock(hashtext(v_seqname));
        IF v_max > coalesce(pg_sequence_last_value(v_seqname::regclass), 0) THEN
            PERFORM setval(v_seqname, v_max);
        END IF;
    END IF;
    RETURN v_count;
END;
$fn$;
