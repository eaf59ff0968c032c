-- Hot accounts (migration 0015; the contract is docs/hot-accounts.md). An account's balance is its tb_accounts
-- row's plus the sum of its slices in tb_account_shards. Between writes a hot account's row holds no balance
-- (unless it is negative, which only an overdraft allows): it is spread over the slices, so a debit can lock one
-- slice that holds enough instead of the row every other debit of the account waits for. Locks are taken in one
-- order everywhere: account rows in user_id order, then each hot account's slices, hot accounts in user_id order
-- and one account's slices in slice order (a debit taking one slice of an account holds none of its others).

-- tb_hot_spread_total(token, user, total): the slices of a hot account (locked by the caller) set to ``total``
-- spread evenly over them, the first ones one base unit more where it does not divide.
CREATE OR REPLACE FUNCTION tb_hot_spread_total(p_token text, p_user text, p_total bigint) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE tb_account_shards s SET balance = p_total / x.n + CASE WHEN x.k < p_total % x.n THEN 1 ELSE 0 END
        FROM (SELECT shard, row_number() OVER (ORDER BY shard) - 1 AS k, count(*) OVER () AS n
              FROM tb_account_shards WHERE token = p_token AND user_id = p_user) x
        WHERE s.token = p_token AND s.user_id = p_user AND s.shard = x.shard;
END;
$fn$;

-- tb_hot_gather(token, users) -> text[]: the hot accounts among ``users`` (their rows locked by the caller), each
-- with its slices locked and their balance moved into its row, so that the row alone holds its balance until
-- tb_hot_spread; returns them in user_id order.
CREATE OR REPLACE FUNCTION tb_hot_gather(p_token text, p_users text[]) RETURNS text[]
LANGUAGE plpgsql AS $fn$
DECLARE
    v_hot text[];
BEGIN
    WITH locked AS MATERIALIZED (
        SELECT user_id, balance FROM tb_account_shards WHERE token = p_token AND user_id = ANY (p_users)
        ORDER BY user_id, shard FOR UPDATE
    ), sums AS (
        SELECT user_id, sum(balance) AS total FROM locked GROUP BY user_id
    ), moved AS (
        UPDATE tb_accounts a SET balance = a.balance + sums.total
            FROM sums WHERE a.token = p_token AND a.user_id = sums.user_id
    )
    SELECT array_agg(user_id ORDER BY user_id) INTO v_hot FROM sums;
    IF v_hot IS NOT NULL THEN
        UPDATE tb_account_shards SET balance = 0 WHERE token = p_token AND user_id = ANY (v_hot) AND balance <> 0;
    END IF;
    RETURN COALESCE(v_hot, '{}');
END;
$fn$;

-- tb_hot_spread(token, users): the balance of each of ``users`` (hot accounts gathered by tb_hot_gather, rows and
-- slices still locked) spread back over its slices; a negative balance stays in its row.
CREATE OR REPLACE FUNCTION tb_hot_spread(p_token text, p_users text[]) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_user text;
    v_balance bigint;
BEGIN
    FOR v_user, v_balance IN SELECT user_id, balance FROM tb_accounts
                             WHERE token = p_token AND user_id = ANY (p_users) AND balance > 0 LOOP
        PERFORM tb_hot_spread_total(p_token, v_user, v_balance);
        UPDATE tb_accounts SET balance = 0 WHERE token = p_token AND user_id = v_user;
    END LOOP;
END;
$fn$;

-- tb_hot_configure(token, user, slices): the account split into ``slices`` slices (1: joined back into its row,
-- no longer hot), its balance spread over them. Creates the account when it is new; safe to call from any number
-- of processes at once (the account's row lock orders them) and again with the same count.
CREATE OR REPLACE FUNCTION tb_hot_configure(p_token text, p_user text, p_slices int) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_hot text[];
BEGIN
    IF p_slices < 1 OR p_slices > 64 THEN
        RAISE EXCEPTION 'tokenbank: a hot account has 1 to 64 slices, not %', p_slices USING ERRCODE = '22023';
    END IF;
    INSERT INTO tb_accounts (token, user_id, balance, held) VALUES (p_token, p_user, 0, 0) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM tb_accounts WHERE token = p_token AND user_id = p_user FOR UPDATE;
    v_hot := tb_hot_gather(p_token, ARRAY[p_user]);
    IF p_slices = 1 THEN
        DELETE FROM tb_account_shards WHERE token = p_token AND user_id = p_user;
        RETURN;
    END IF;
    DELETE FROM tb_account_shards WHERE token = p_token AND user_id = p_user AND shard >= p_slices;
    INSERT INTO tb_account_shards (token, user_id, shard, balance)
        SELECT p_token, p_user, s, 0 FROM generate_series(0, p_slices - 1) s ON CONFLICT DO NOTHING;
    PERFORM tb_hot_spread(p_token, ARRAY[p_user]);
END;
$fn$;
-- tb_apply(token, ops, atomic) -> json: as in 0013, except that the hot accounts among the call's accounts are
-- gathered into their rows after the rows are locked (so every op reads and writes an account's whole balance in
-- its row, and the balances after it records are exact) and spread back over their slices at the end.
CREATE OR REPLACE FUNCTION tb_apply(p_token text, p_ops jsonb, p_atomic boolean) RETURNS json
LANGUAGE plpgsql AS $fn$
DECLARE
    v_token tb_tokens;
    v_ids text[];
    v_results json;
    v_items jsonb[] := '{}';  -- appended per op, turned into one value at the end (|| would copy O(n^2))
    v_op jsonb;
    v_res jsonb;
    v_idx int := 0;
    v_controlled boolean := false;
    v_hot text[] := '{}';  -- the hot accounts of the call, gathered into their rows until the end
BEGIN
    IF NOT p_ops @? '$[*] ? (@.kind != "transfer" || exists(@.ts) || exists(@.audit) || !exists(@.from)
                             || !exists(@.to))' THEN
        PERFORM 1 FROM tb_tokens WHERE symbol = p_token;
        IF NOT FOUND THEN
            SELECT json_agg(json_build_object('s', 12)) INTO v_results FROM jsonb_array_elements(p_ops);
            RETURN v_results;
        END IF;
        v_results := tb_apply_transfers(p_token, p_ops, p_atomic);
        IF v_results IS NOT NULL THEN
            RETURN v_results;
        END IF;
    END IF;

    IF p_ops @? '$[*] ? (@.kind == "mint" || @.kind == "burn" || (@.kind == "grant" && !exists(@.from)))' THEN
        SELECT * INTO v_token FROM tb_tokens WHERE symbol = p_token FOR UPDATE;
    ELSE
        SELECT * INTO v_token FROM tb_tokens WHERE symbol = p_token;
    END IF;
    IF v_token.symbol IS NULL THEN
        SELECT json_agg(json_build_object('s', 12)) INTO v_results FROM jsonb_array_elements(p_ops);
        RETURN v_results;
    END IF;

    SELECT array_agg(DISTINCT u ORDER BY u) INTO v_ids FROM (
        SELECT o->>'from' AS u FROM jsonb_array_elements(p_ops) o
        UNION ALL SELECT o->>'to' FROM jsonb_array_elements(p_ops) o
        UNION ALL SELECT unnest(ARRAY[h.from_user_id, h.to_user_id]) FROM tb_holds h
            WHERE h.id IN (SELECT o->>'hold_id' FROM jsonb_array_elements(p_ops) o
                           WHERE o->>'kind' IN ('capture', 'void')) AND h.token = p_token
        UNION ALL SELECT unnest(ARRAY[t.from_user_id, t.to_user_id]) FROM tb_transactions t
            WHERE t.id IN (SELECT o->>'reverses_id' FROM jsonb_array_elements(p_ops) o
                           WHERE o->>'kind' = 'reversal') AND t.token = p_token
    ) s WHERE u IS NOT NULL;
    IF v_ids IS NOT NULL THEN
        INSERT INTO tb_accounts (token, user_id, balance, held)
            SELECT p_token, u, 0, 0 FROM unnest(v_ids) u ORDER BY u ON CONFLICT DO NOTHING;
        PERFORM 1 FROM tb_accounts WHERE token = p_token AND user_id = ANY (v_ids) ORDER BY user_id FOR UPDATE;
        v_hot := tb_hot_gather(p_token, v_ids);
        -- Read after the locks: a control set before any of them was taken is seen.
        v_controlled := EXISTS (SELECT 1 FROM tb_account_controls WHERE token = p_token AND user_id = ANY (v_ids));
    END IF;

    IF NOT p_atomic THEN
        FOR v_op IN SELECT value FROM jsonb_array_elements(p_ops) LOOP
            v_items := v_items || CASE WHEN v_controlled THEN tb_apply_controlled(p_token, v_op) ELSE tb_apply_one(p_token, v_op) END;
        END LOOP;
        v_results := to_json(v_items);
    ELSE
        BEGIN
            FOR v_op IN SELECT value FROM jsonb_array_elements(p_ops) LOOP
                v_res := CASE WHEN v_controlled THEN tb_apply_controlled(p_token, v_op) ELSE tb_apply_one(p_token, v_op) END;
                IF (v_res->>'s')::int > 1 THEN
                    RAISE EXCEPTION 'tokenbank atomic batch failed' USING ERRCODE = 'TB001',
                        DETAIL = jsonb_build_object('idx', v_idx, 'res', v_res)::text;
                END IF;
                v_items := v_items || v_res;
                v_idx := v_idx + 1;
            END LOOP;
            v_results := to_json(v_items);
        EXCEPTION WHEN SQLSTATE 'TB001' THEN
            DECLARE
                v_detail jsonb;
            BEGIN
                GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
                SELECT json_agg(CASE WHEN n - 1 = (v_detail->>'idx')::int THEN (v_detail->'res')::json
                                     ELSE json_build_object('s', 14) END ORDER BY n)
                    INTO v_results FROM jsonb_array_elements(p_ops) WITH ORDINALITY AS e(value, n);
            END;
        END;
    END IF;
    IF cardinality(v_hot) > 0 THEN
        PERFORM tb_hot_spread(p_token, v_hot);
    END IF;
    RETURN v_results;
END;
$fn$;

-- tb_apply_transfers(token, ops, atomic) -> json | NULL: as in 0014, except for hot accounts (see above): a hot
-- account's row is not locked; a slice holding all the call debits it is (a free one first, so concurrent calls
-- take different ones, else the first to be free), or, when no slice holds that much, all its slices (then its
-- balance is exact and each op is judged against it). Under one slice the balance after an op is not known and not recorded (NULL) for that account. A hot
-- account with controls or lots is declined (tb_apply gathers it).
CREATE OR REPLACE FUNCTION tb_apply_transfers(p_token text, p_ops jsonb, p_atomic boolean) RETURNS json
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
    v_n int;
    v_uid text[];      -- the accounts of the call, in user_id order
    v_tid tid[];       -- their locked rows
    v_old bigint[];    -- their balances before the call
    v_lotted boolean[]; -- whether they have lots
    v_lots boolean;    -- whether a sender of the call has lots; then, the open lots of those senders in spend order:
    l_id text[];
    l_own int[];       -- ... their owner (index into v_uid)
    l_rem bigint[];    -- ... what is left of them, as the ops take from them
    l_old bigint[];    -- ... and before the call
    l_exp timestamptz[];
    l_av timestamptz[];
    l_first int[];     -- per account: its lots' first and last index in the l_ arrays (NULL: none)
    l_last int[];
    v_lm text[];       -- per op: its lot moves (JSON)
    v_locked bigint;
    v_need bigint;
    v_take bigint;
    v_moves text;
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
    v_hot text[];      -- the hot accounts of the call (their rows are not locked: a slice of each is, or all):
    v_cold text[];     -- ... and the others
    h_all boolean[];   -- per account: NULL not hot, false one slice taken (h_slice), true all its slices
    h_slice int[];
    v_slices int;
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
    v_hot := ARRAY(SELECT DISTINCT user_id FROM tb_account_shards WHERE token = p_token AND user_id = ANY (v_uid));
    v_cold := v_uid;
    IF cardinality(v_hot) > 0 THEN
        -- A hot account with controls or lots takes tb_apply's way (its slices gathered into its row, then the
        -- rules as for any account); this is checked again once its slices are locked.
        IF EXISTS (SELECT 1 FROM tb_account_controls WHERE token = p_token AND user_id = ANY (v_hot))
           OR EXISTS (SELECT 1 FROM tb_accounts WHERE token = p_token AND user_id = ANY (v_hot) AND has_lots) THEN
            RETURN NULL;
        END IF;
        v_cold := ARRAY(SELECT unnest(v_uid) EXCEPT SELECT unnest(v_hot));
    END IF;

    -- Every account row of the call locked in user_id order, reading the balances. If rows are missing, the
    -- locks are given back (the block is a subtransaction), the rows are created in user_id order and then all
    -- are locked again: the order tb_apply takes, so two calls never wait for each other out of order.
    BEGIN
        SELECT array_agg(ctid), array_agg(balance), array_agg(has_lots) INTO v_tid, v_old, v_lotted FROM (
            SELECT ctid, balance, has_lots FROM tb_accounts WHERE token = p_token AND user_id = ANY (v_cold)
            ORDER BY user_id FOR UPDATE) s;
        IF coalesce(array_length(v_old, 1), 0) < coalesce(array_length(v_cold, 1), 0) THEN
            RAISE EXCEPTION 'tokenbank: new accounts' USING ERRCODE = 'TB003';
        END IF;
    EXCEPTION WHEN SQLSTATE 'TB003' THEN
        INSERT INTO tb_accounts (token, user_id, balance, held)
            SELECT p_token, u, 0, 0 FROM unnest(v_cold) u ORDER BY u COLLATE "C" ON CONFLICT DO NOTHING;
        SELECT array_agg(ctid), array_agg(balance), array_agg(has_lots) INTO v_tid, v_old, v_lotted FROM (
            SELECT ctid, balance, has_lots FROM tb_accounts WHERE token = p_token AND user_id = ANY (v_cold)
            ORDER BY user_id FOR UPDATE) s;
    END;
    IF cardinality(v_hot) > 0 THEN
        -- The arrays indexed like v_uid again (a hot account's row read, not locked); then, each hot account in
        -- user_id order: one slice holding what the call debits it, a free one (SKIP LOCKED) so concurrent debits
        -- take different ones, else one as soon as it is free; when no slice holds enough, all of them in slice
        -- order (its balance then exact).
        SELECT array_agg(a.ctid ORDER BY u.r), array_agg(a.balance ORDER BY u.r),
               array_agg(COALESCE(a.has_lots, false) ORDER BY u.r), array_agg(CASE WHEN u.u = ANY (v_hot) THEN false END ORDER BY u.r)
            INTO v_tid, v_old, v_lotted, h_all
            FROM unnest(v_uid) WITH ORDINALITY AS u(u, r)
                 LEFT JOIN tb_accounts a ON a.token = p_token AND a.user_id = u.u;
        h_slice := array_fill(NULL::int, ARRAY[cardinality(v_uid)]);
        FOR v_h IN 1..cardinality(v_uid) LOOP
            CONTINUE WHEN h_all[v_h] IS NULL;
            v_tid[v_h] := NULL;
            v_need := (SELECT LEAST(COALESCE(sum(a), 0), 9223372036854775807) FROM unnest(v_fi, v_amt) AS x(f, a) WHERE x.f = v_h);
            v_s := NULL;
            -- About one call in 256 takes all the slices anyway: the exact balance it records keeps the run of
            -- entries without one short, which balance_at adds up.
            IF random() >= 1.0 / 256 THEN
                SELECT shard, balance INTO v_s, v_a FROM tb_account_shards
                    WHERE token = p_token AND user_id = v_uid[v_h] AND balance >= v_need
                    ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED;
                IF v_s IS NULL THEN  -- every slice with enough is taken: wait for one (another if it then has too little)
                    SELECT shard, balance INTO v_s, v_a FROM tb_account_shards
                        WHERE token = p_token AND user_id = v_uid[v_h] AND balance >= v_need
                        ORDER BY random() LIMIT 1 FOR UPDATE;
                END IF;
            END IF;
            IF v_s IS NOT NULL THEN
                h_slice[v_h] := v_s;
                v_old[v_h] := v_a;
            ELSE
                h_all[v_h] := true;
                SELECT count(*), COALESCE(sum(balance), 0) INTO v_slices, v_a FROM (
                    SELECT balance FROM tb_account_shards WHERE token = p_token AND user_id = v_uid[v_h]
                    ORDER BY shard FOR UPDATE) s;
                -- A slice added or the account joined back meanwhile: its row may hold its balance; start again.
                IF v_slices = 0 OR v_slices <> (SELECT count(*) FROM tb_account_shards
                                                WHERE token = p_token AND user_id = v_uid[v_h])
                   OR (SELECT balance FROM tb_accounts WHERE token = p_token AND user_id = v_uid[v_h]) <> 0 THEN
                    RAISE EXCEPTION 'tokenbank: hot account % changed under a transfer', v_uid[v_h]
                        USING ERRCODE = '40001';
                END IF;
                v_old[v_h] := v_a;
            END IF;
        END LOOP;
        -- Controls or lots given to a hot account before its slices were locked: start again (then tb_apply's way).
        IF EXISTS (SELECT 1 FROM tb_account_controls WHERE token = p_token AND user_id = ANY (v_hot))
           OR EXISTS (SELECT 1 FROM tb_accounts WHERE token = p_token AND user_id = ANY (v_hot) AND has_lots) THEN
            RAISE EXCEPTION 'tokenbank: a hot account changed under a transfer' USING ERRCODE = '40001';
        END IF;
    END IF;
    v_lots := true = ANY (v_lotted) AND EXISTS (SELECT 1 FROM unnest(v_fi) f WHERE v_lotted[f]);
    IF v_lots THEN
        -- Each sender's locked lots and the start of its spendable ones (see above); a second pass reads all of
        -- them for every sender when the start of one sender's holds less than the call's debits together.
        v_need := (SELECT LEAST(sum(a), 9223372036854775807) FROM unnest(v_amt) a);
        FOR v_pass IN 1..2 LOOP
            SELECT array_agg(id), array_agg(r), array_agg(remaining), array_agg(expires_at), array_agg(available_at)
                INTO l_id, l_own, l_rem, l_exp, l_av
                FROM (SELECT l.id, u.r, l.remaining, l.expires_at, l.available_at
                      FROM unnest(v_uid) WITH ORDINALITY AS u(u, r)
                           CROSS JOIN LATERAL (  -- index probes per sender with lots, whatever the statistics say
                               (SELECT l.* FROM tb_lots l  -- (OFFSET 0 keeps a subquery from becoming a join)
                                WHERE l.token = p_token AND l.user_id = u.u AND l.remaining > 0
                                  AND l.expires_at <= v_now OFFSET 0)
                               UNION ALL
                               (SELECT l.* FROM tb_lots l
                                WHERE l.token = p_token AND l.user_id = u.u AND l.remaining > 0
                                  AND l.available_at > v_now AND (l.expires_at IS NULL OR l.expires_at > v_now) OFFSET 0)
                               UNION ALL
                               (SELECT l.* FROM tb_lots l
                                WHERE l.token = p_token AND l.user_id = u.u AND l.remaining > 0
                                  AND (l.available_at IS NULL OR l.available_at <= v_now)
                                  AND (l.expires_at IS NULL OR l.expires_at > v_now)
                                ORDER BY l.expires_at ASC NULLS LAST
                                FETCH FIRST (CASE WHEN v_pass = 1 THEN 32 ELSE 9223372036854775807 END) ROWS WITH TIES)) l
                      WHERE v_lotted[u.r] AND u.r = ANY (v_fi)
                      ORDER BY u.r, l.expires_at ASC NULLS LAST, l.id COLLATE "C") s;
            EXIT WHEN v_pass = 2 OR NOT EXISTS (
                SELECT 1 FROM unnest(l_own, l_rem, l_exp, l_av) AS x(o, rem, ex, av)
                WHERE (av IS NULL OR av <= v_now) AND (ex IS NULL OR ex > v_now)
                GROUP BY o HAVING count(*) >= 32 AND sum(rem) < v_need);
        END LOOP;
        l_old := l_rem;
        l_first := array_fill(NULL::int, ARRAY[cardinality(v_uid)]);
        l_last := l_first;
        FOR v_k IN 1..COALESCE(cardinality(l_own), 0) LOOP
            l_first[l_own[v_k]] := COALESCE(l_first[l_own[v_k]], v_k);
            l_last[l_own[v_k]] := v_k;
        END LOOP;
        v_lm := array_fill(NULL::text, ARRAY[v_n]);
    END IF;
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
        -- What the sender's lots hold locked (pending, or expired and not yet swept) does not pay.
        v_locked := 0;
        IF v_lots AND l_first[v_f] IS NOT NULL THEN
            FOR v_k IN l_first[v_f]..l_last[v_f] LOOP
                IF l_rem[v_k] > 0 AND (l_av[v_k] > v_now OR l_exp[v_k] <= v_now) THEN
                    v_locked := v_locked + l_rem[v_k];
                END IF;
            END LOOP;
        END IF;
        -- c_od is NULL (so each element is) when no account of the call has controls: no overdraft.
        IF v_s IS NULL AND v_bal[v_f] - v_locked < v_a - COALESCE(c_od[v_f], 0) THEN v_s := 2; END IF;
        IF v_s IS NULL THEN
            IF v_lots AND l_first[v_f] IS NOT NULL THEN  -- the spendable lots first, in spend order
                v_need := v_a;
                v_moves := NULL;
                FOR v_k IN l_first[v_f]..l_last[v_f] LOOP
                    EXIT WHEN v_need = 0;
                    IF l_rem[v_k] > 0 AND (l_av[v_k] IS NULL OR l_av[v_k] <= v_now)
                       AND (l_exp[v_k] IS NULL OR l_exp[v_k] > v_now) THEN
                        v_take := LEAST(l_rem[v_k], v_need);
                        l_rem[v_k] := l_rem[v_k] - v_take;
                        v_need := v_need - v_take;
                        v_moves := COALESCE(v_moves || ',', '') || '[' || to_json(l_id[v_k])::text || ',"'
                                   || v_take || '"]';
                    END IF;
                END LOOP;
                v_lm[v_i] := '[' || v_moves || ']';
            END IF;
            v_bal[v_f] := v_bal[v_f] - v_a;
            v_bal[v_t] := v_bal[v_t] + v_a;
            IF h_all[v_f] IS DISTINCT FROM false THEN  -- one slice of a hot account: its balance is not known
                v_fb[v_i] := v_bal[v_f];
            END IF;
            IF h_all[v_t] IS DISTINCT FROM false THEN
                v_tb[v_i] := v_bal[v_t];
            END IF;
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

    IF v_lots THEN  -- each lot the call took from, once, by its key
        FOR v_k IN 1..COALESCE(cardinality(l_id), 0) LOOP
            CONTINUE WHEN l_rem[v_k] = l_old[v_k];
            UPDATE tb_lots SET remaining = l_rem[v_k] WHERE token = p_token AND id = l_id[v_k];
        END LOOP;
    END IF;

    IF cardinality(v_hot) > 0 THEN  -- the slices taken: the one changed, or all of them spread again
        FOR v_h IN 1..cardinality(v_uid) LOOP
            CONTINUE WHEN h_all[v_h] IS NULL OR v_bal[v_h] = v_old[v_h];
            IF h_all[v_h] THEN
                PERFORM tb_hot_spread_total(p_token, v_uid[v_h], v_bal[v_h]);
            ELSE
                UPDATE tb_account_shards SET balance = v_bal[v_h]
                    WHERE token = p_token AND user_id = v_uid[v_h] AND shard = h_slice[v_h];
            END IF;
        END LOOP;
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
                                     to_balance_after, created_at, metadata, idempotency_key, request_hash, reason,
                                     lots)
            SELECT op->>'id', p_token, 'transfer', op->>'from', op->>'to', x.a, x.fb, x.tb, clock_timestamp(),
                   op->>'meta', op->>'key', op->>'hash', op->>'reason', v_lm[x.n::int]
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
