-- Migration 0002 (hybrid sync), PostgreSQL only: the sync state, the quarantine of conflicting entries, and
-- tb_replicate, which applies a batch of Redis ledger stream entries. Read by 0002_hybrid_sync.py only: a later
-- change to these functions belongs in a new file and migration.
--
-- Entries arrive as the Redis stream carries them: every field a string, times in microseconds since the epoch,
-- plus "hold" (the hold's JSON from Redis) on hold/capture/void entries when the worker could read it.

    CREATE TABLE tb_sync_state (
        token VARCHAR(16) PRIMARY KEY,
        applied BIGINT NOT NULL DEFAULT 0,
        last_seq BIGINT,
        last_created_at TIMESTAMPTZ,
        audit_synced BIGINT NOT NULL DEFAULT 0,
        backfilled_seq BIGINT,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );

    CREATE TABLE tb_sync_conflicts (
        token VARCHAR(16) NOT NULL,
        tx_id VARCHAR(36) NOT NULL,
        seq BIGINT,
        reason TEXT NOT NULL,
        entry JSONB NOT NULL,
        detected_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (token, tx_id)
    );

    CREATE OR REPLACE FUNCTION tb_from_us(p_us bigint) RETURNS timestamptz
    LANGUAGE sql STABLE AS $fn$ SELECT timestamptz 'epoch' + p_us * interval '1 microsecond' $fn$;

-- The set-based fast path. Inserts the entries it has not seen (by id), then applies the balance, held,
-- supply and hold-row changes of THOSE rows only: a redelivered entry is skipped and changes nothing.
-- Locks are taken in one global order (journal by seq, accounts by id, holds by id, token, sync state),
-- so two workers never deadlock. Raises unique_violation / check_violation for the caller to sort out.
    CREATE OR REPLACE FUNCTION tb_replicate_batch(p_token text, p_entries jsonb) RETURNS bigint
    LANGUAGE plpgsql AS $fn$
    DECLARE
        v_new jsonb;
        v_count bigint;
        v_max bigint;
        v_last timestamptz;
        v_seqname text;
        v_users text[];
        v_balance bigint[];
        v_held bigint[];
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
            RETURNING seq, id, type, from_user_id, to_user_id, amount, hold_id, created_at
        )
        SELECT jsonb_agg(to_jsonb(ins)), count(*), max(seq), max(created_at) INTO v_new, v_count, v_max, v_last
            FROM ins;
        IF v_count = 0 THEN
            RETURN 0;
        END IF;

        WITH n AS (
            SELECT * FROM jsonb_to_recordset(v_new)
                AS x(type text, from_user_id text, to_user_id text, amount bigint)
        ), d AS (
            SELECT from_user_id AS u, -amount AS b, 0::bigint AS h FROM n WHERE type IN ('transfer', 'burn', 'reversal')
            UNION ALL SELECT from_user_id, -amount, amount FROM n WHERE type = 'hold'
            UNION ALL SELECT to_user_id, amount, 0 FROM n WHERE type IN ('transfer', 'mint', 'capture', 'reversal')
            UNION ALL SELECT from_user_id, 0, -amount FROM n WHERE type = 'capture'
            UNION ALL SELECT from_user_id, amount, -amount FROM n WHERE type = 'void'
        )
        SELECT array_agg(u ORDER BY u), array_agg(b ORDER BY u), array_agg(h ORDER BY u)
            INTO v_users, v_balance, v_held
            FROM (SELECT u, sum(b)::bigint AS b, sum(h)::bigint AS h FROM d GROUP BY u) s;
        -- Missing rows first (at zero: a CHECK is tested on the row an upsert proposes, before the conflict, so
        -- an upsert of a negative change would fail), then every row locked in id order, then the changes.
        INSERT INTO tb_accounts (token, user_id, balance, held)
            SELECT p_token, u, 0, 0 FROM unnest(v_users) u ORDER BY u ON CONFLICT DO NOTHING;
        PERFORM 1 FROM tb_accounts WHERE token = p_token AND user_id = ANY (v_users) ORDER BY user_id FOR UPDATE;
        UPDATE tb_accounts a SET balance = a.balance + x.b, held = a.held + x.h
            FROM unnest(v_users, v_balance, v_held) AS x(u, b, h)
            WHERE a.token = p_token AND a.user_id = x.u;

        -- One upsert per hold, whatever order its entries arrive in: a capture wins over a void (the release
        -- of a partial capture), and a later "hold" entry never takes a settled hold back to pending.
        WITH n AS (
            SELECT * FROM jsonb_to_recordset(v_new) AS x(type text, amount bigint, hold_id text)
            WHERE hold_id IS NOT NULL
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

        UPDATE tb_tokens SET total_supply = total_supply + s.delta
            FROM (SELECT sum(CASE WHEN type = 'mint' THEN amount ELSE -amount END)::bigint AS delta
                  FROM jsonb_to_recordset(v_new) AS x(type text, amount bigint)
                  WHERE type IN ('mint', 'burn')) s
            WHERE symbol = p_token AND s.delta IS NOT NULL AND s.delta <> 0;

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

-- One sync batch = one call = one transaction: entries, then audit entries and token settings.
-- A batch that breaks a unique key (a seq or idempotency key Redis reused after losing data) is applied entry
-- by entry and the offending entries are quarantined in tb_sync_conflicts. A balance check failure is raised
-- (entries may just be out of order between two workers: retried later) unless p_strict is false, after
-- which those entries are quarantined too.
    CREATE OR REPLACE FUNCTION tb_replicate(p_token text, p_entries jsonb, p_audit jsonb, p_token_fields jsonb,
                                            p_strict boolean) RETURNS jsonb
    LANGUAGE plpgsql AS $fn$
    DECLARE
        v_inserted bigint := 0;
        v_conflicts jsonb := '[]'::jsonb;
        v_entry jsonb;
        v_audit_synced bigint;
        v_audited bigint := 0;
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM tb_tokens WHERE symbol = p_token) THEN
            RAISE EXCEPTION 'tokenbank: token % is not in PostgreSQL yet', p_token USING ERRCODE = 'TB010';
        END IF;
        IF jsonb_array_length(p_entries) > 0 THEN
            BEGIN
                v_inserted := tb_replicate_batch(p_token, p_entries);
            EXCEPTION WHEN unique_violation OR check_violation THEN
                IF p_strict AND SQLSTATE = '23514' THEN
                    RAISE;
                END IF;
                FOR v_entry IN SELECT value FROM jsonb_array_elements(p_entries) ORDER BY (value->>'seq')::bigint LOOP
                    BEGIN
                        v_inserted := v_inserted + tb_replicate_batch(p_token, jsonb_build_array(v_entry));
                    EXCEPTION WHEN unique_violation OR check_violation THEN
                        IF p_strict AND SQLSTATE = '23514' THEN
                            RAISE;
                        END IF;
                        INSERT INTO tb_sync_conflicts (token, tx_id, seq, reason, entry)
                            VALUES (p_token, v_entry->>'id', (v_entry->>'seq')::bigint, SQLERRM, v_entry)
                            ON CONFLICT DO NOTHING;
                        v_conflicts := v_conflicts || jsonb_build_array(v_entry->>'id');
                    END;
                END LOOP;
            END;
        END IF;

        IF p_audit IS NOT NULL AND jsonb_array_length(p_audit) > 0 THEN
            INSERT INTO tb_sync_state (token) VALUES (p_token) ON CONFLICT DO NOTHING;
            SELECT audit_synced INTO v_audit_synced FROM tb_sync_state WHERE token = p_token FOR UPDATE;
            INSERT INTO tb_audit (token, action, details, created_at)
                SELECT p_token, a->>'action', a->>'details', tb_from_us((a->>'ts')::bigint)
                FROM jsonb_array_elements(p_audit) a
                WHERE (a->>'rid')::bigint > v_audit_synced ORDER BY (a->>'rid')::bigint;
            GET DIAGNOSTICS v_audited = ROW_COUNT;
            UPDATE tb_sync_state SET audit_synced = greatest(audit_synced,
                (SELECT max((a->>'rid')::bigint) FROM jsonb_array_elements(p_audit) a)), updated_at = now()
                WHERE token = p_token;
        END IF;
        IF p_token_fields IS NOT NULL THEN
            UPDATE tb_tokens SET name = p_token_fields->>'name', emoji = p_token_fields->>'emoji',
                                 max_supply = (p_token_fields->>'max_supply')::bigint,
                                 treasury_account = p_token_fields->>'treasury_account'
                WHERE symbol = p_token;
        END IF;
        RETURN jsonb_build_object('inserted', v_inserted, 'conflicts', v_conflicts, 'audited', v_audited);
    END;
    $fn$;
