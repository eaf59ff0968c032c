-- Overdraft limits in the PostgreSQL write path (migration 0010). An account whose controls row has an
-- ``overdraft`` L may be debited down to -L; every other account stays at or above zero as before. The balance
-- check of each debit becomes ``balance >= amount - L`` (L = 0 without an overdraft), so the rule is enforced by
-- the same single UPDATE that takes the amount, under the account's row lock. This file is read by migration
-- 0010 only; its functions are 0001's tb_apply_one and 0009's tb_apply_controlled and tb_apply_transfers with
-- that one change.

-- tb_overdraft(token, op, user) -> bigint: how far below zero a debit of ``user`` by ``op`` may go. Only an op
-- marked ``ctl`` (tb_apply_controlled marks them: the call has accounts with controls) looks the limit up; an op
-- of a call without controls has none, and reads nothing. The mark only ever causes the lookup, never a limit.
CREATE OR REPLACE FUNCTION tb_overdraft(p_token text, p_op jsonb, p_user text) RETURNS bigint
LANGUAGE sql STABLE AS $fn$
    SELECT CASE WHEN p_op ? 'ctl'
                THEN COALESCE((SELECT c.overdraft FROM tb_account_controls c
                               WHERE c.token = p_token AND c.user_id = p_user), 0)
                ELSE 0 END
$fn$;

-- tb_apply_one(token, op) -> {s, t, h}: as in 0001, each debit allowed down to minus the debited account's
-- overdraft (tb_overdraft).
CREATE OR REPLACE FUNCTION tb_apply_one(p_token text, p_op jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
    v_kind text := p_op->>'kind';
    v_key text := p_op->>'key';
    v_amount bigint := (p_op->>'amount')::bigint;
    v_now timestamptz := COALESCE((p_op->>'ts')::timestamptz, clock_timestamp());
    v_tx tb_transactions;
    v_tx2 tb_transactions;
    v_hold tb_holds;
    v_token tb_tokens;
    v_from_bal bigint;
    v_to_bal bigint;
    v_rest bigint;
BEGIN
    IF v_key IS NOT NULL THEN
        SELECT * INTO v_tx FROM tb_transactions WHERE token = p_token AND idempotency_key = v_key;
        IF FOUND THEN
            IF v_tx.request_hash IS DISTINCT FROM p_op->>'hash' THEN
                RETURN jsonb_build_object('s', 4);
            END IF;
            SELECT * INTO v_hold FROM tb_holds WHERE id = v_tx.hold_id;
            RETURN jsonb_build_object('s', 1, 't', jsonb_build_array(to_jsonb(v_tx)),
                                      'h', CASE WHEN v_hold.id IS NULL THEN NULL ELSE to_jsonb(v_hold) END);
        END IF;
    END IF;
    SELECT * INTO v_tx FROM tb_transactions WHERE id = p_op->>'id';
    IF FOUND THEN
        IF p_op ? 'ts' THEN  -- an import whose id exists already
            RETURN jsonb_build_object('s', 13);
        END IF;
        -- A resend of an op this store already applied (the answer was lost with the connection): replay it.
        SELECT * INTO v_hold FROM tb_holds WHERE id = v_tx.hold_id;
        RETURN jsonb_build_object('s', 1, 't', jsonb_build_array(to_jsonb(v_tx)),
                                  'h', CASE WHEN v_hold.id IS NULL THEN NULL ELSE to_jsonb(v_hold) END);
    END IF;

    IF v_kind = 'transfer' THEN
        UPDATE tb_accounts SET balance = balance - v_amount
            WHERE token = p_token AND user_id = p_op->>'from' AND balance >= v_amount - tb_overdraft(p_token, p_op, p_op->>'from')
            RETURNING balance INTO v_from_bal;
        IF NOT FOUND THEN RETURN jsonb_build_object('s', 2); END IF;
        UPDATE tb_accounts SET balance = balance + v_amount
            WHERE token = p_token AND user_id = p_op->>'to' RETURNING balance INTO v_to_bal;
        INSERT INTO tb_transactions (id, token, type, from_user_id, to_user_id, amount, from_balance_after,
                                     to_balance_after, created_at, metadata, idempotency_key, request_hash, reason)
            VALUES (p_op->>'id', p_token, 'transfer', p_op->>'from', p_op->>'to', v_amount, v_from_bal, v_to_bal,
                    v_now, p_op->>'meta', v_key, p_op->>'hash', p_op->>'reason')
            RETURNING * INTO v_tx;

    ELSIF v_kind = 'mint' THEN
        SELECT * INTO v_token FROM tb_tokens WHERE symbol = p_token;
        IF v_token.total_supply::numeric + v_amount
                > COALESCE(v_token.max_supply, 9223372036854775807)::numeric THEN
            RETURN jsonb_build_object('s', 3);
        END IF;
        UPDATE tb_tokens SET total_supply = total_supply + v_amount WHERE symbol = p_token;
        UPDATE tb_accounts SET balance = balance + v_amount
            WHERE token = p_token AND user_id = p_op->>'to' RETURNING balance INTO v_to_bal;
        INSERT INTO tb_transactions (id, token, type, to_user_id, amount, to_balance_after, created_at, metadata,
                                     idempotency_key, request_hash, reason)
            VALUES (p_op->>'id', p_token, 'mint', p_op->>'to', v_amount, v_to_bal, v_now, p_op->>'meta', v_key,
                    p_op->>'hash', p_op->>'reason')
            RETURNING * INTO v_tx;

    ELSIF v_kind = 'burn' THEN
        UPDATE tb_accounts SET balance = balance - v_amount
            WHERE token = p_token AND user_id = p_op->>'from' AND balance >= v_amount - tb_overdraft(p_token, p_op, p_op->>'from')
            RETURNING balance INTO v_from_bal;
        IF NOT FOUND THEN RETURN jsonb_build_object('s', 2); END IF;
        UPDATE tb_tokens SET total_supply = total_supply - v_amount WHERE symbol = p_token;
        INSERT INTO tb_transactions (id, token, type, from_user_id, amount, from_balance_after, created_at, metadata,
                                     idempotency_key, request_hash, reason)
            VALUES (p_op->>'id', p_token, 'burn', p_op->>'from', v_amount, v_from_bal, v_now, p_op->>'meta', v_key,
                    p_op->>'hash', p_op->>'reason')
            RETURNING * INTO v_tx;

    ELSIF v_kind = 'hold' THEN
        UPDATE tb_accounts SET balance = balance - v_amount, held = held + v_amount
            WHERE token = p_token AND user_id = p_op->>'from' AND balance >= v_amount - tb_overdraft(p_token, p_op, p_op->>'from')
            RETURNING balance INTO v_from_bal;
        IF NOT FOUND THEN RETURN jsonb_build_object('s', 2); END IF;
        SELECT balance INTO v_to_bal FROM tb_accounts WHERE token = p_token AND user_id = p_op->>'to';
        INSERT INTO tb_holds (id, token, from_user_id, to_user_id, amount, captured_amount, status, expires_at,
                              created_at, metadata)
            VALUES (p_op->>'hold_id', p_token, p_op->>'from', p_op->>'to', v_amount, 0, 'pending',
                    (p_op->>'expires_at')::timestamptz, v_now, p_op->>'meta')
            RETURNING * INTO v_hold;
        INSERT INTO tb_transactions (id, token, type, from_user_id, to_user_id, amount, from_balance_after,
                                     to_balance_after, created_at, metadata, idempotency_key, request_hash, reason,
                                     hold_id)
            VALUES (p_op->>'id', p_token, 'hold', p_op->>'from', p_op->>'to', v_amount, v_from_bal, v_to_bal, v_now,
                    p_op->>'meta', v_key, p_op->>'hash', p_op->>'reason', v_hold.id)
            RETURNING * INTO v_tx;

    ELSIF v_kind IN ('capture', 'void') THEN
        SELECT * INTO v_hold FROM tb_holds WHERE id = p_op->>'hold_id' AND token = p_token FOR UPDATE;
        IF NOT FOUND THEN RETURN jsonb_build_object('s', 5); END IF;
        IF v_hold.status <> 'pending' THEN RETURN jsonb_build_object('s', 6); END IF;
        IF v_kind = 'capture' THEN
            IF v_hold.expires_at <= v_now THEN RETURN jsonb_build_object('s', 7); END IF;
            v_amount := COALESCE(v_amount, v_hold.amount);
            IF v_amount > v_hold.amount THEN RETURN jsonb_build_object('s', 8); END IF;
        ELSE
            v_amount := 0;
        END IF;
        v_rest := v_hold.amount - v_amount;
        UPDATE tb_accounts SET held = held - v_hold.amount, balance = balance + v_rest
            WHERE token = p_token AND user_id = v_hold.from_user_id RETURNING balance INTO v_from_bal;
        UPDATE tb_accounts SET balance = balance + v_amount
            WHERE token = p_token AND user_id = v_hold.to_user_id RETURNING balance INTO v_to_bal;
        UPDATE tb_holds SET status = CASE WHEN v_kind = 'capture' THEN 'captured' ELSE 'voided' END,
                            captured_amount = v_amount
            WHERE id = v_hold.id RETURNING * INTO v_hold;
        IF v_amount > 0 THEN
            INSERT INTO tb_transactions (id, token, type, from_user_id, to_user_id, amount, from_balance_after,
                                         to_balance_after, created_at, metadata, idempotency_key, request_hash,
                                         reason, hold_id)
                VALUES (p_op->>'id', p_token, 'capture', v_hold.from_user_id, v_hold.to_user_id, v_amount,
                        v_from_bal, v_to_bal, v_now, p_op->>'meta', v_key, p_op->>'hash', p_op->>'reason', v_hold.id)
                RETURNING * INTO v_tx;
        END IF;
        IF v_rest > 0 THEN
            INSERT INTO tb_transactions (id, token, type, from_user_id, to_user_id, amount, from_balance_after,
                                         to_balance_after, created_at, metadata, idempotency_key, request_hash,
                                         reason, hold_id)
                VALUES (CASE WHEN v_amount > 0 THEN p_op->>'id2' ELSE p_op->>'id' END, p_token, 'void',
                        v_hold.from_user_id, v_hold.to_user_id, v_rest, v_from_bal, v_to_bal, v_now,
                        p_op->>'meta', CASE WHEN v_amount > 0 THEN NULL ELSE v_key END,
                        CASE WHEN v_amount > 0 THEN NULL ELSE p_op->>'hash' END,
                        COALESCE(p_op->>'reason', CASE WHEN v_amount > 0 THEN 'released by partial capture' END),
                        v_hold.id)
                RETURNING * INTO v_tx2;
        END IF;
        IF v_tx.id IS NULL THEN
            v_tx := v_tx2;
            v_tx2 := NULL;
        END IF;

    ELSIF v_kind = 'reversal' THEN
        SELECT * INTO v_tx2 FROM tb_transactions WHERE id = p_op->>'reverses_id' AND token = p_token;
        IF NOT FOUND THEN RETURN jsonb_build_object('s', 9); END IF;
        IF v_tx2.type <> 'transfer' THEN RETURN jsonb_build_object('s', 10); END IF;
        IF EXISTS (SELECT 1 FROM tb_transactions WHERE token = p_token AND reverses_id = v_tx2.id) THEN
            RETURN jsonb_build_object('s', 11);
        END IF;
        UPDATE tb_accounts SET balance = balance - v_tx2.amount
            WHERE token = p_token AND user_id = v_tx2.to_user_id
              AND balance >= v_tx2.amount - tb_overdraft(p_token, p_op, v_tx2.to_user_id)
            RETURNING balance INTO v_from_bal;
        IF NOT FOUND THEN RETURN jsonb_build_object('s', 2); END IF;
        UPDATE tb_accounts SET balance = balance + v_tx2.amount
            WHERE token = p_token AND user_id = v_tx2.from_user_id RETURNING balance INTO v_to_bal;
        INSERT INTO tb_transactions (id, token, type, from_user_id, to_user_id, amount, from_balance_after,
                                     to_balance_after, created_at, metadata, idempotency_key, request_hash, reason,
                                     reverses_id)
            VALUES (p_op->>'id', p_token, 'reversal', v_tx2.to_user_id, v_tx2.from_user_id, v_tx2.amount,
                    v_from_bal, v_to_bal, v_now, p_op->>'meta', v_key, p_op->>'hash', p_op->>'reason', v_tx2.id)
            RETURNING * INTO v_tx;
        v_tx2 := NULL;
    ELSE
        RAISE EXCEPTION 'tokenbank: unknown op kind %', v_kind;
    END IF;

    IF p_op ? 'audit' THEN
        INSERT INTO tb_audit (token, action, details, created_at)
            VALUES (p_token, p_op->>'audit',
                    jsonb_build_object('transaction_id', v_tx.id, 'type', v_tx.type, 'from_user_id', v_tx.from_user_id,
                                       'to_user_id', v_tx.to_user_id, 'amount', v_tx.amount::text,
                                       'reason', v_tx.reason)::text,
                    v_now);
    END IF;
    IF p_op ? 'notify' THEN
        -- Delivered to LISTENers only if the transaction commits; no metadata, to stay far below 8000 bytes.
        PERFORM pg_notify(p_op->>'notify', tb_event_payload(v_tx));
        IF v_tx2.id IS NOT NULL THEN
            PERFORM pg_notify(p_op->>'notify', tb_event_payload(v_tx2));
        END IF;
    END IF;
    RETURN jsonb_build_object(
        's', 0,
        't', CASE WHEN v_tx2.id IS NULL THEN jsonb_build_array(to_jsonb(v_tx))
                  ELSE jsonb_build_array(to_jsonb(v_tx), to_jsonb(v_tx2)) END,
        'h', CASE WHEN v_hold.id IS NULL THEN NULL ELSE to_jsonb(v_hold) END);
END;
$fn$;

-- tb_apply_controlled(token, op) -> {s, t, h}: as in 0009, with the op marked ``ctl`` for tb_apply_one, so its
-- debit reads the debited account's overdraft.
CREATE OR REPLACE FUNCTION tb_apply_controlled(p_token text, p_op jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
    v_now timestamptz := COALESCE((p_op->>'ts')::timestamptz, clock_timestamp());
    v_res jsonb;
BEGIN
    v_res := tb_controls_refusal(p_token, p_op, v_now);
    IF v_res IS NOT NULL THEN
        RETURN v_res;
    END IF;
    v_res := tb_apply_one(p_token, p_op || '{"ctl": true}');
    IF (v_res->>'s')::int = 0 AND p_op->>'kind' IN ('transfer', 'burn', 'hold') THEN
        IF EXISTS (SELECT 1 FROM tb_account_controls
                   WHERE token = p_token AND user_id = p_op->>'from' AND window_amount IS NOT NULL) THEN
            INSERT INTO tb_account_spends (token, user_id, tx_id, amount, at)
                VALUES (p_token, p_op->>'from', p_op->>'id', (p_op->>'amount')::bigint, v_now);
            UPDATE tb_account_controls
                SET spent_total = spent_total + (p_op->>'amount')::bigint, spent_oldest = LEAST(spent_oldest, v_now)
                WHERE token = p_token AND user_id = p_op->>'from' AND v_now > spent_through;
        END IF;
    END IF;
    RETURN v_res;
END;
$fn$;

-- tb_apply_transfers(token, ops, atomic) -> json | NULL: as in 0009, the sender's overdraft read with its other
-- controls: a transfer is refused (2) only if it would take the sender below minus its overdraft.
CREATE OR REPLACE FUNCTION tb_apply_transfers(p_token text, p_ops jsonb, p_atomic boolean) RETURNS json
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
    v_n int;
    v_uid text[];      -- the accounts of the call, in user_id order
    v_tid tid[];       -- their locked rows
    v_old bigint[];    -- their balances before the call
    v_bal bigint[];    -- ... and as the ops change them
    v_keys varchar[];
    v_fi int[];        -- per op: its sender's and receiver's index into v_uid, its amount
    v_ti int[];
    v_amt bigint[];
    v_ok boolean[];
    v_fb bigint[];
    v_tb bigint[];
    v_decline boolean;
    v_fail int;
    v_f int;
    v_t int;
    v_a bigint;
    v_s int;
    v_st int[];        -- per op: the status that refused it
    v_results json;
    v_now timestamptz := clock_timestamp();
    v_ctl boolean;     -- whether an account of the call has controls; then, indexed like v_uid:
    v_refresh boolean; -- whether a spend window's running total must drop rows that left it first
    v_spenders int[] := '{}';  -- the senders (indexes into v_uid) whose spend window the call adds to
    v_moved text[];    -- ... those whose controls row the update by row id did not find (or that it left alone)
    c_df boolean[];    -- debits frozen now
    c_cf boolean[];    -- credits frozen now
    c_closed boolean[];
    c_max bigint[];    -- maximum balance
    c_wa bigint[];     -- spend window amount
    c_od bigint[];     -- overdraft limit (NULL: none)
    c_spent numeric[]; -- what the window has spent, as the ops add to it
    c_tid tid[];       -- the controls rows
BEGIN
    -- (Aggregates below read sorted subqueries in their order: one sort each instead of one per array.)
    WITH o AS (
        SELECT * FROM ROWS FROM (jsonb_to_recordset(p_ops) AS (id text, "from" text, "to" text, amount bigint, key text))
            WITH ORDINALITY AS x(id, f, t, amount, key, ord)
    ), u AS (
        SELECT u, (row_number() OVER (ORDER BY u COLLATE "C"))::int AS r
        FROM (SELECT f FROM o UNION SELECT t FROM o) s(u)
    )
    SELECT (SELECT array_agg(u) FROM (SELECT u FROM u ORDER BY r) s), array_agg(fr), array_agg(tr), array_agg(amount),
           array_agg(key) FILTER (WHERE key IS NOT NULL), count(*),
           count(DISTINCT id) < count(*) OR count(DISTINCT key) < count(key)
           OR EXISTS (SELECT 1 FROM tb_transactions t WHERE t.id = ANY (array_agg(s.id)))
        INTO v_uid, v_fi, v_ti, v_amt, v_keys, v_n, v_decline
        FROM (SELECT o.id, uf.r AS fr, ut.r AS tr, o.amount, o.key
              FROM o JOIN u uf ON uf.u = o.f JOIN u ut ON ut.u = o.t ORDER BY o.ord) s;
    IF v_decline OR (v_keys IS NOT NULL
                     AND EXISTS (SELECT 1 FROM unnest(v_keys) k JOIN tb_transactions t
                                 ON t.token = p_token AND t.idempotency_key = k)) THEN
        RETURN NULL;
    END IF;

    -- Every account row of the call locked in user_id order, reading the balances. If rows are missing, the
    -- locks are given back (the block is a subtransaction), the rows are created in user_id order and then all
    -- are locked again: the order tb_apply takes, so two calls never wait for each other out of order.
    BEGIN
        SELECT array_agg(ctid), array_agg(balance) INTO v_tid, v_old FROM (
            SELECT ctid, balance FROM tb_accounts WHERE token = p_token AND user_id = ANY (v_uid)
            ORDER BY user_id FOR UPDATE) s;
        IF coalesce(array_length(v_old, 1), 0) < array_length(v_uid, 1) THEN
            RAISE EXCEPTION 'tokenbank: new accounts' USING ERRCODE = 'TB003';
        END IF;
    EXCEPTION WHEN SQLSTATE 'TB003' THEN
        INSERT INTO tb_accounts (token, user_id, balance, held)
            SELECT p_token, u, 0, 0 FROM unnest(v_uid) u ORDER BY u COLLATE "C" ON CONFLICT DO NOTHING;
        SELECT array_agg(ctid), array_agg(balance) INTO v_tid, v_old FROM (
            SELECT ctid, balance FROM tb_accounts WHERE token = p_token AND user_id = ANY (v_uid)
            ORDER BY user_id FOR UPDATE) s;
    END;
    -- The controls of the call's accounts, read after the locks (so a control set before them is seen), as
    -- arrays indexed like v_uid, with what each spend window has spent (its running total, brought up to date).
    v_ctl := EXISTS (SELECT 1 FROM tb_account_controls WHERE token = p_token AND user_id = ANY (v_uid));
    FOR v_pass IN 1..2 LOOP
        EXIT WHEN NOT v_ctl;
        SELECT array_agg(df), array_agg(cf), array_agg(closed), array_agg(mx), array_agg(wa), array_agg(od), array_agg(spent),
               array_agg(tid), COALESCE(bool_or(stale), false)
            INTO c_df, c_cf, c_closed, c_max, c_wa, c_od, c_spent, c_tid, v_refresh
            FROM (SELECT COALESCE(c.debits_frozen AND (c.frozen_until IS NULL OR c.frozen_until > v_now), false),
                         COALESCE(c.credits_frozen AND (c.frozen_until IS NULL OR c.frozen_until > v_now), false),
                         COALESCE(c.closed, false), c.max_balance, c.window_amount, c.overdraft,
                         CASE WHEN c.window_amount IS NULL THEN 0
                              WHEN v_now - make_interval(secs => c.window_seconds) < c.spent_through THEN
                                  c.spent_total + (SELECT COALESCE(sum(s.amount), 0) FROM tb_account_spends s
                                                   WHERE s.token = p_token AND s.user_id = u.u
                                                     AND s.at > v_now - make_interval(secs => c.window_seconds)
                                                     AND s.at <= c.spent_through)
                              ELSE c.spent_total END,
                         c.ctid,
                         c.window_amount IS NOT NULL
                             AND (c.spent_through IS NULL
                                  OR c.spent_oldest <= v_now - make_interval(secs => c.window_seconds))
                  FROM unnest(v_uid) WITH ORDINALITY AS u(u, r)
                       LEFT JOIN LATERAL (  -- one index probe per account, whatever the table's statistics say
                           SELECT c.*, c.ctid FROM tb_account_controls c
                           WHERE c.token = p_token AND c.user_id = u.u LIMIT 1) c ON true
                  ORDER BY u.r) x(df, cf, closed, mx, wa, od, spent, tid, stale);
        EXIT WHEN NOT v_refresh;
        -- Rows left a window since its last debit (or it was never counted): its total first, then read again.
        PERFORM tb_spend_refresh(p_token, v_uid, v_now);
    END LOOP;

    -- Each op in order: the controls first (as tb_controls_refusal orders them), then the balance.
    v_bal := v_old;
    v_ok := array_fill(false, ARRAY[v_n]);
    v_st := array_fill(NULL::int, ARRAY[v_n]);
    v_fb := array_fill(NULL::bigint, ARRAY[v_n]);
    v_tb := array_fill(NULL::bigint, ARRAY[v_n]);
    FOR v_i IN 1..v_n LOOP
        v_f := v_fi[v_i];
        v_t := v_ti[v_i];
        v_a := v_amt[v_i];
        v_s := NULL;
        IF v_ctl THEN
            IF c_closed[v_f] OR c_closed[v_t] THEN v_s := 17;
            ELSIF c_df[v_f] THEN v_s := 15;
            ELSIF c_cf[v_t] THEN v_s := 16;
            ELSIF c_wa[v_f] IS NOT NULL AND c_spent[v_f] + v_a > c_wa[v_f] THEN v_s := 19;
            ELSIF c_max[v_t] IS NOT NULL AND v_bal[v_t]::numeric + v_a > c_max[v_t] THEN v_s := 18;
            END IF;
        END IF;
        -- c_od is NULL (so each element is) when no account of the call has controls: no overdraft.
        IF v_s IS NULL AND v_bal[v_f] < v_a - COALESCE(c_od[v_f], 0) THEN v_s := 2; END IF;
        IF v_s IS NULL THEN
            v_bal[v_f] := v_bal[v_f] - v_a;
            v_fb[v_i] := v_bal[v_f];
            v_bal[v_t] := v_bal[v_t] + v_a;
            v_tb[v_i] := v_bal[v_t];
            v_ok[v_i] := true;
            IF v_ctl AND c_wa[v_f] IS NOT NULL THEN
                c_spent[v_f] := c_spent[v_f] + v_a;
                IF NOT v_f = ANY (v_spenders) THEN
                    v_spenders := v_spenders || v_f;
                END IF;
            END IF;
        ELSE
            v_st[v_i] := v_s;
            IF p_atomic THEN
                v_fail := v_i;
                EXIT;
            END IF;
        END IF;
    END LOOP;
    IF v_fail IS NOT NULL THEN
        SELECT json_agg(CASE WHEN n = v_fail THEN json_build_object('s', v_st[n]) ELSE '{"s": 14}'::json END
                        ORDER BY n)
            INTO v_results FROM generate_series(1, v_n) n;
        RETURN v_results;
    END IF;
    IF v_ctl THEN  -- the debits each sender's spend window counts from now on, and its running total
        INSERT INTO tb_account_spends (token, user_id, tx_id, amount, at)
            SELECT p_token, v_uid[x.f], p_ops -> (x.n::int - 1) ->> 'id', x.a, v_now
            FROM unnest(v_ok, v_fi, v_amt) WITH ORDINALITY AS x(ok, f, a, n)
            WHERE x.ok AND c_wa[x.f] IS NOT NULL;
        -- By the rows read above (a probe per row, whatever the statistics say). Writes of a controls row hold its
        -- account's lock, except hybrid mode's sync copying a change: a row it moved meanwhile is found by its key.
        WITH upd AS (
            UPDATE tb_account_controls c
                SET spent_total = c.spent_total + (SELECT sum(x.a) FROM unnest(v_ok, v_fi, v_amt) AS x(ok, f, a)
                                                   WHERE x.ok AND v_uid[x.f] = c.user_id),
                    spent_oldest = LEAST(c.spent_oldest, v_now)
                WHERE c.ctid = ANY (ARRAY(SELECT c_tid[i] FROM unnest(v_spenders) i))
                  AND c.token = p_token AND c.user_id = ANY (ARRAY(SELECT v_uid[i] FROM unnest(v_spenders) i))
                  AND v_now > c.spent_through
                RETURNING c.user_id
        )
        SELECT array_agg(user_id::text) INTO v_moved FROM upd;
        v_moved := ARRAY(SELECT v_uid[i] FROM unnest(v_spenders) i EXCEPT SELECT unnest(v_moved));
        IF cardinality(v_moved) > 0 THEN
            UPDATE tb_account_controls c
                SET spent_total = c.spent_total + (SELECT sum(x.a) FROM unnest(v_ok, v_fi, v_amt) AS x(ok, f, a)
                                                   WHERE x.ok AND v_uid[x.f] = c.user_id),
                    spent_oldest = LEAST(c.spent_oldest, v_now)
                WHERE c.token = p_token AND c.user_id = ANY (v_moved) AND v_now > c.spent_through;
        END IF;
    END IF;

    -- One statement writes it all: each changed account once, the journal rows in op order (seq follows the ops),
    -- the balance events in that order (delivered to LISTENers only if the transaction commits, one per journal
    -- row as tb_apply_one sends them), and the answer.
    WITH upd AS (
        UPDATE tb_accounts a SET balance = x.b
            FROM unnest(v_tid, v_bal, v_old) AS x(c, b, o)
            WHERE a.ctid = x.c AND x.b <> x.o
    ), ins AS (
        INSERT INTO tb_transactions (id, token, type, from_user_id, to_user_id, amount, from_balance_after,
                                     to_balance_after, created_at, metadata, idempotency_key, request_hash, reason)
            SELECT op->>'id', p_token, 'transfer', op->>'from', op->>'to', x.a, x.fb, x.tb, clock_timestamp(),
                   op->>'meta', op->>'key', op->>'hash', op->>'reason'
            FROM unnest(v_ok, v_amt, v_fb, v_tb) WITH ORDINALITY AS x(ok, a, fb, tb, n),
                 LATERAL (SELECT p_ops -> (x.n::int - 1)) AS e(op)
            WHERE x.ok ORDER BY x.n
            RETURNING *
    ), ev AS (
        SELECT pg_notify(e.op->>'notify', tb_event_payload(ROW(ins.*)::tb_transactions))
            FROM ins JOIN jsonb_array_elements(p_ops) AS e(op) ON e.op->>'id' = ins.id
            WHERE e.op ? 'notify' ORDER BY ins.seq
    )
    SELECT (SELECT json_agg(CASE WHEN ins.id IS NULL THEN json_build_object('s', v_st[e.n])
                                 ELSE json_build_object('s', 0, 't', json_build_array(row_to_json(ins)), 'h', NULL)
                            END ORDER BY e.n)
            FROM jsonb_array_elements(p_ops) WITH ORDINALITY AS e(op, n) LEFT JOIN ins ON ins.id = e.op->>'id'),
           (SELECT count(*) FROM ev)
        INTO v_results, v_n;
    RETURN v_results;
END;
$fn$;
