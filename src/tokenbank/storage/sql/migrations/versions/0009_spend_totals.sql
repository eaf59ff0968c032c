-- Spend windows in O(1) (migration 0009): each account with a window keeps a running total of the spends its
-- window counts in tb_account_controls, so a debit's check reads one row instead of summing the window's rows.
-- The totals stay exact (a spend counts for exactly the window's seconds after it was made):
--   spent_total   = the sum of the account's tb_account_spends rows with at > spent_through
--   spent_through = the window's start when the total last dropped what left it (NULL: not counted yet,
--                   the next check sums the window's rows once)
--   spent_oldest  = the oldest of those rows (NULL: none), so a check knows without a probe whether any row
--                   has left the window since (then tb_spend_refresh subtracts what left, row by row once)
-- A check at a time whose window starts before spent_through (a write whose clock reading came before another
-- one's, or an import with its own timestamp) adds the rows in between: any check sums exactly the rows of its
-- own window. The accounts' rows are locked before, so the totals change in the order of the account's writes.
-- Replaces 0008's tb_controls_refusal, tb_apply_controlled and tb_apply_transfers; tb_apply stays 0008's. This
-- file is read by migration 0009 only.

-- tb_spend_refresh(token, users, now): for the accounts of ``users`` with a spend window, their running totals
-- brought to the window ending at ``now``: counted from the rows if they were not yet, else with the rows that
-- left the window since subtracted. Only the accounts that need it are written.
CREATE OR REPLACE FUNCTION tb_spend_refresh(p_token text, p_users text[], p_now timestamptz) RETURNS void
LANGUAGE sql AS $fn$
    UPDATE tb_account_controls c
        SET spent_total = CASE WHEN c.spent_through IS NULL
                               THEN (SELECT COALESCE(sum(s.amount), 0) FROM tb_account_spends s
                                     WHERE s.token = p_token AND s.user_id = c.user_id
                                       AND s.at > p_now - make_interval(secs => c.window_seconds))
                               ELSE c.spent_total - (SELECT COALESCE(sum(s.amount), 0) FROM tb_account_spends s
                                                     WHERE s.token = p_token AND s.user_id = c.user_id
                                                       AND s.at > c.spent_through
                                                       AND s.at <= p_now - make_interval(secs => c.window_seconds))
                          END,
            spent_through = p_now - make_interval(secs => c.window_seconds),
            spent_oldest = (SELECT s.at FROM tb_account_spends s
                            WHERE s.token = p_token AND s.user_id = c.user_id
                              AND s.at > p_now - make_interval(secs => c.window_seconds)
                            ORDER BY s.at LIMIT 1)
        WHERE c.token = p_token AND c.user_id = ANY (p_users) AND c.window_amount IS NOT NULL
          AND (c.spent_through IS NULL OR c.spent_oldest <= p_now - make_interval(secs => c.window_seconds));
$fn$;

-- tb_window_spent(token, controls, now) -> what the account's window ending at ``now`` has spent (its totals
-- brought up to date first if rows left the window).
CREATE OR REPLACE FUNCTION tb_window_spent(p_token text, c tb_account_controls, p_now timestamptz) RETURNS numeric
LANGUAGE plpgsql AS $fn$
DECLARE
    v_cut timestamptz := p_now - make_interval(secs => c.window_seconds);
BEGIN
    IF c.spent_through IS NULL OR c.spent_oldest <= v_cut THEN
        PERFORM tb_spend_refresh(p_token, ARRAY[c.user_id], p_now);
        SELECT * INTO c FROM tb_account_controls WHERE token = p_token AND user_id = c.user_id;
    END IF;
    IF v_cut < c.spent_through THEN  -- a window starting earlier than the totals: the rows in between count too
        RETURN c.spent_total + (SELECT COALESCE(sum(amount), 0) FROM tb_account_spends
                                WHERE token = p_token AND user_id = c.user_id AND at > v_cut AND at <= c.spent_through);
    END IF;
    RETURN c.spent_total;
END;
$fn$;

-- tb_controls_refusal(token, op, now) -> {s} | NULL: the status that refuses ``op`` under its accounts'
-- controls, or NULL (allowed; a replay or resend is always allowed: it answers what was written). Debits: a
-- transfer's, burn's and hold's sender and a reversal's original receiver; credits: a transfer's and mint's
-- receiver, a capture's hold receiver, a reversal's original sender. A void releases held funds to their owner
-- and is never refused; a capture of a settled hold and a reversal that cannot be made are left to tb_apply_one,
-- which says why. Checked in this order: closed (17), debits frozen (15), credits frozen (16), spend per
-- window (19: transfers, burns and holds count; reversals do not), max balance (18).
CREATE OR REPLACE FUNCTION tb_controls_refusal(p_token text, p_op jsonb, p_now timestamptz) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
    v_kind text := p_op->>'kind';
    v_amount bigint := (p_op->>'amount')::bigint;
    v_debit text;
    v_credit text;
    v_counted boolean := v_kind IN ('transfer', 'burn', 'hold');
    v_hold tb_holds;
    v_tx tb_transactions;
    c tb_account_controls;
    v_spent numeric;
    v_balance bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM tb_transactions WHERE id = p_op->>'id')
       OR (p_op ? 'key' AND EXISTS (SELECT 1 FROM tb_transactions
                                     WHERE token = p_token AND idempotency_key = p_op->>'key')) THEN
        RETURN NULL;
    END IF;
    IF v_kind IN ('transfer', 'hold', 'burn') THEN
        v_debit := p_op->>'from';
        v_credit := CASE WHEN v_kind = 'transfer' THEN p_op->>'to' END;
    ELSIF v_kind = 'mint' THEN
        v_credit := p_op->>'to';
    ELSIF v_kind = 'capture' THEN
        SELECT * INTO v_hold FROM tb_holds WHERE id = p_op->>'hold_id' AND token = p_token;
        IF NOT FOUND OR v_hold.status <> 'pending' THEN RETURN NULL; END IF;
        v_credit := v_hold.to_user_id;
        v_amount := COALESCE(v_amount, v_hold.amount);
    ELSIF v_kind = 'reversal' THEN
        SELECT * INTO v_tx FROM tb_transactions WHERE id = p_op->>'reverses_id' AND token = p_token;
        IF NOT FOUND OR v_tx.type <> 'transfer'
           OR EXISTS (SELECT 1 FROM tb_transactions WHERE token = p_token AND reverses_id = v_tx.id) THEN
            RETURN NULL;  -- not reversible: tb_apply_one says why
        END IF;
        v_debit := v_tx.to_user_id;
        v_credit := v_tx.from_user_id;
        v_amount := v_tx.amount;
    ELSE
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM tb_account_controls WHERE token = p_token AND closed
                                                  AND user_id IN (v_debit, v_credit)) THEN
        RETURN jsonb_build_object('s', 17);
    END IF;
    IF v_debit IS NOT NULL THEN
        SELECT * INTO c FROM tb_account_controls WHERE token = p_token AND user_id = v_debit;
        IF FOUND AND c.debits_frozen AND (c.frozen_until IS NULL OR c.frozen_until > p_now) THEN
            RETURN jsonb_build_object('s', 15);
        END IF;
    END IF;
    IF v_credit IS NOT NULL THEN
        SELECT * INTO c FROM tb_account_controls WHERE token = p_token AND user_id = v_credit;
        IF FOUND AND c.credits_frozen AND (c.frozen_until IS NULL OR c.frozen_until > p_now) THEN
            RETURN jsonb_build_object('s', 16);
        END IF;
    END IF;
    IF v_debit IS NOT NULL AND v_counted THEN
        SELECT * INTO c FROM tb_account_controls WHERE token = p_token AND user_id = v_debit;
        IF FOUND AND c.window_amount IS NOT NULL THEN
            v_spent := tb_window_spent(p_token, c, p_now);
            IF v_spent + v_amount > c.window_amount THEN
                RETURN jsonb_build_object('s', 19);
            END IF;
        END IF;
    END IF;
    IF v_credit IS NOT NULL THEN
        SELECT * INTO c FROM tb_account_controls WHERE token = p_token AND user_id = v_credit;
        IF FOUND AND c.max_balance IS NOT NULL THEN
            SELECT balance INTO v_balance FROM tb_accounts WHERE token = p_token AND user_id = v_credit;
            IF COALESCE(v_balance, 0)::numeric + v_amount > c.max_balance THEN
                RETURN jsonb_build_object('s', 18);
            END IF;
        END IF;
    END IF;
    RETURN NULL;
END;
$fn$;

-- tb_apply_controlled(token, op) -> {s, t, h}: tb_apply_one under the op's accounts' controls (the caller holds
-- their row locks); a counted debit of an account with a spend window is recorded and added to its running total
-- (spends that left their window are pruned by the hold sweeper).
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
    v_res := tb_apply_one(p_token, p_op);
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

-- tb_apply_transfers(token, ops, atomic) -> json | NULL: a call of plain transfers, set-based. NULL (nothing
-- written) if an id or idempotency key of the call is in the journal already or used twice in the call: those
-- are replays, conflicts or resends, which tb_apply then runs op by op. The accounts' controls are checked here
-- too, on arrays read once per call (after the locks), as tb_controls_refusal checks them op by op. As 0008's,
-- with each spend window's running total in place of summing its rows.
-- Same outcome as tb_apply_one per op, in order: the ops run on the locked balances held in arrays (debit only if
-- the balance covers it, then credit; the balances after each op are the journal's balance-after fields), then
-- each changed account is written once, the journal rows are inserted in op order (seq follows the ops), and the
-- balance events are sent in that order. An atomic call that fails writes nothing. The planner is kept on index
-- paths: each statement touches a few rows of tables that may be small now and large later.
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
        SELECT array_agg(df), array_agg(cf), array_agg(closed), array_agg(mx), array_agg(wa), array_agg(spent),
               array_agg(tid), COALESCE(bool_or(stale), false)
            INTO c_df, c_cf, c_closed, c_max, c_wa, c_spent, c_tid, v_refresh
            FROM (SELECT COALESCE(c.debits_frozen AND (c.frozen_until IS NULL OR c.frozen_until > v_now), false),
                         COALESCE(c.credits_frozen AND (c.frozen_until IS NULL OR c.frozen_until > v_now), false),
                         COALESCE(c.closed, false), c.max_balance, c.window_amount,
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
                  ORDER BY u.r) x(df, cf, closed, mx, wa, spent, tid, stale);
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
        IF v_s IS NULL AND v_bal[v_f] < v_a THEN v_s := 2; END IF;
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
