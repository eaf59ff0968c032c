-- Credit lots in the PostgreSQL write path (migration 0013; the contract is docs/lots.md). A grant creates a lot
-- (tb_lots, id = the grant's transaction id); every debit of an account whose ``has_lots`` is set checks its
-- balance less what its lots hold locked (pending, or expired and not yet swept), then takes from its spendable
-- lots soonest expiry first (no expiry last, then lot id in byte order) and records the moves in the
-- transaction's ``lots`` (and a hold's in tb_holds.lots, given back last-taken-first by its void or released
-- rest). Accounts without lots read no lot row: ``has_lots`` comes with the row each debit already locks (op by
-- op in tb_apply_one, for the whole call in tb_apply_transfers, which keeps plain transfers set-based whether
-- their senders have lots or not). Lot rows change only under their owner's account lock (tb_apply and
-- tb_apply_transfers lock every account of the call first), so they need no lock of their own. The hybrid sync
-- copies lots too (tb_replicate_batch). This file is read by migration 0013 only; its functions replace 0011's
-- tb_apply_one, 0010's tb_apply_controlled and tb_apply_transfers, 0009's tb_controls_refusal, 0008's tb_apply
-- and 0012's tb_replicate_batch.

-- tb_lots_locked(token, user, now) -> bigint: what the account's lots hold that is not spendable at ``now`` (not
-- yet available, or expired and not yet swept). PL/pgSQL, so its plan is kept for the session (a SQL function
-- called from a statement is planned again at each call).
CREATE OR REPLACE FUNCTION tb_lots_locked(p_token text, p_user text, p_now timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    RETURN (SELECT COALESCE(sum(remaining), 0) FROM tb_lots
            WHERE token = p_token AND user_id = p_user AND remaining > 0
              AND (available_at > p_now OR expires_at <= p_now));
END;
$fn$;

-- tb_lots_take(token, user, amount, now) -> text | NULL: takes up to ``amount`` from the account's lots spendable
-- at ``now``, in spend order (expires_at ascending, no expiry last, then id in byte order), each lot giving what
-- it has up to what is still needed; the moves as JSON ``[["<lot id>","<units>"],...]`` (NULL: none). The caller
-- has debited the balance and holds the account's row lock. Each lot is written by its key, and the walk stops
-- at the lot that covers the rest (usually the first).
CREATE OR REPLACE FUNCTION tb_lots_take(p_token text, p_user text, p_amount bigint, p_now timestamptz) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
    v_need bigint := p_amount;
    v_n bigint;
    v_lot record;
    v_moves text;
BEGIN
    FOR v_lot IN
        SELECT id, remaining FROM tb_lots
        WHERE token = p_token AND user_id = p_user AND remaining > 0
          AND (available_at IS NULL OR available_at <= p_now) AND (expires_at IS NULL OR expires_at > p_now)
        ORDER BY expires_at ASC NULLS LAST, id COLLATE "C"
    LOOP
        v_n := LEAST(v_lot.remaining, v_need);
        UPDATE tb_lots SET remaining = remaining - v_n WHERE token = p_token AND id = v_lot.id;
        v_moves := COALESCE(v_moves || ',', '') || '[' || to_json(v_lot.id)::text || ',"' || v_n || '"]';
        v_need := v_need - v_n;
        EXIT WHEN v_need = 0;
    END LOOP;
    RETURN '[' || v_moves || ']';
END;
$fn$;

-- tb_lots_give_back(token, moves, amount, last_first) -> text | NULL: gives up to ``amount`` back to the lots of
-- ``moves`` (what a hold or a transfer took, positive), each lot up to what it gave, from the last move
-- (``last_first``: a void or the released rest of a partial capture) or from the first (a reversal, which gives
-- everything back); the moves as JSON with negative units (NULL: none). A lot that expired meanwhile takes its
-- units back too (the next sweep takes them).
CREATE OR REPLACE FUNCTION tb_lots_give_back(p_token text, p_moves text, p_amount bigint, p_last_first boolean)
RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
    v_left bigint := p_amount;
    v_n bigint;
    v_move record;
    v_moves text;
BEGIN
    IF p_moves IS NULL OR p_amount <= 0 THEN
        RETURN NULL;
    END IF;
    FOR v_move IN
        SELECT e->>0 AS id, (e->>1)::bigint AS n
        FROM jsonb_array_elements(p_moves::jsonb) WITH ORDINALITY AS x(e, o)
        ORDER BY CASE WHEN p_last_first THEN -o ELSE o END
    LOOP
        CONTINUE WHEN v_move.n <= 0;
        v_n := LEAST(v_move.n, v_left);
        UPDATE tb_lots SET remaining = remaining + v_n WHERE token = p_token AND id = v_move.id;
        v_moves := COALESCE(v_moves || ',', '') || '[' || to_json(v_move.id)::text || ',"-' || v_n || '"]';
        v_left := v_left - v_n;
        EXIT WHEN v_left = 0;
    END LOOP;
    RETURN '[' || v_moves || ']';
END;
$fn$;

-- tb_apply_one(token, op) -> {s, t, h}: as in 0011, with lots: each debit (a transfer's, burn's and hold's sender,
-- a funded grant's funder, a reversal's original receiver) of an account with lots is checked against its balance
-- less what its lots hold locked, and takes from its spendable lots (tb_lots_take); a void and the released rest
-- of a partial capture give back to the hold's lots; a reversal gives back to the original sender's lots. New
-- kinds: ``grant`` (a new lot of ``to``, minted like a mint, or funded by ``from`` like a transfer's debit) and
-- ``expire`` (what is left of an expired lot moves from its owner to the breakage account ``to``, under no control;
-- a lot that is gone, someone else's, empty or not expired yet: OK with no transaction).
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
    v_lot tb_lots;
    v_from_bal bigint;
    v_to_bal bigint;
    v_rest bigint;
    v_has boolean;     -- the debited account has lots
    v_lots text;       -- the moves of the transaction (JSON), NULL: none
    v_back text;
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
            WHERE token = p_token AND user_id = p_op->>'from'
              AND balance - CASE WHEN has_lots THEN tb_lots_locked(p_token, user_id, v_now) ELSE 0 END
                  >= v_amount - tb_overdraft(p_token, p_op, p_op->>'from')
            RETURNING balance, has_lots INTO v_from_bal, v_has;
        IF NOT FOUND THEN RETURN jsonb_build_object('s', 2); END IF;
        IF v_has THEN
            v_lots := tb_lots_take(p_token, p_op->>'from', v_amount, v_now);
        END IF;
        UPDATE tb_accounts SET balance = balance + v_amount
            WHERE token = p_token AND user_id = p_op->>'to' RETURNING balance INTO v_to_bal;
        INSERT INTO tb_transactions (id, token, type, from_user_id, to_user_id, amount, from_balance_after,
                                     to_balance_after, created_at, metadata, idempotency_key, request_hash, reason,
                                     lots)
            VALUES (p_op->>'id', p_token, 'transfer', p_op->>'from', p_op->>'to', v_amount, v_from_bal, v_to_bal,
                    v_now, p_op->>'meta', v_key, p_op->>'hash', p_op->>'reason', v_lots)
            RETURNING * INTO v_tx;

    ELSIF v_kind = 'mint' THEN
        SELECT * INTO v_token FROM tb_tokens WHERE symbol = p_token FOR UPDATE;
        IF v_token.total_supply::numeric + v_amount
                > LEAST(COALESCE(v_token.max_supply, 9223372036854775807)::numeric,
                        9223372036854775807 - tb_overdraft_total(p_token)) THEN
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
            WHERE token = p_token AND user_id = p_op->>'from'
              AND balance - CASE WHEN has_lots THEN tb_lots_locked(p_token, user_id, v_now) ELSE 0 END
                  >= v_amount - tb_overdraft(p_token, p_op, p_op->>'from')
            RETURNING balance, has_lots INTO v_from_bal, v_has;
        IF NOT FOUND THEN RETURN jsonb_build_object('s', 2); END IF;
        IF v_has THEN
            v_lots := tb_lots_take(p_token, p_op->>'from', v_amount, v_now);
        END IF;
        UPDATE tb_tokens SET total_supply = total_supply - v_amount WHERE symbol = p_token;
        INSERT INTO tb_transactions (id, token, type, from_user_id, amount, from_balance_after, created_at, metadata,
                                     idempotency_key, request_hash, reason, lots)
            VALUES (p_op->>'id', p_token, 'burn', p_op->>'from', v_amount, v_from_bal, v_now, p_op->>'meta', v_key,
                    p_op->>'hash', p_op->>'reason', v_lots)
            RETURNING * INTO v_tx;

    ELSIF v_kind = 'hold' THEN
        UPDATE tb_accounts SET balance = balance - v_amount, held = held + v_amount
            WHERE token = p_token AND user_id = p_op->>'from'
              AND balance - CASE WHEN has_lots THEN tb_lots_locked(p_token, user_id, v_now) ELSE 0 END
                  >= v_amount - tb_overdraft(p_token, p_op, p_op->>'from')
            RETURNING balance, has_lots INTO v_from_bal, v_has;
        IF NOT FOUND THEN RETURN jsonb_build_object('s', 2); END IF;
        IF v_has THEN
            v_lots := tb_lots_take(p_token, p_op->>'from', v_amount, v_now);
        END IF;
        SELECT balance INTO v_to_bal FROM tb_accounts WHERE token = p_token AND user_id = p_op->>'to';
        INSERT INTO tb_holds (id, token, from_user_id, to_user_id, amount, captured_amount, status, expires_at,
                              created_at, metadata, lots)
            VALUES (p_op->>'hold_id', p_token, p_op->>'from', p_op->>'to', v_amount, 0, 'pending',
                    (p_op->>'expires_at')::timestamptz, v_now, p_op->>'meta', v_lots)
            RETURNING * INTO v_hold;
        INSERT INTO tb_transactions (id, token, type, from_user_id, to_user_id, amount, from_balance_after,
                                     to_balance_after, created_at, metadata, idempotency_key, request_hash, reason,
                                     hold_id, lots)
            VALUES (p_op->>'id', p_token, 'hold', p_op->>'from', p_op->>'to', v_amount, v_from_bal, v_to_bal, v_now,
                    p_op->>'meta', v_key, p_op->>'hash', p_op->>'reason', v_hold.id, v_lots)
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
        -- The captured part counts as spent from the first lots the hold took; the rest goes back last-first.
        v_back := tb_lots_give_back(p_token, v_hold.lots, v_rest, true);
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
                                         reason, hold_id, lots)
                VALUES (CASE WHEN v_amount > 0 THEN p_op->>'id2' ELSE p_op->>'id' END, p_token, 'void',
                        v_hold.from_user_id, v_hold.to_user_id, v_rest, v_from_bal, v_to_bal, v_now,
                        p_op->>'meta', CASE WHEN v_amount > 0 THEN NULL ELSE v_key END,
                        CASE WHEN v_amount > 0 THEN NULL ELSE p_op->>'hash' END,
                        COALESCE(p_op->>'reason', CASE WHEN v_amount > 0 THEN 'released by partial capture' END),
                        v_hold.id, v_back)
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
              AND balance - CASE WHEN has_lots THEN tb_lots_locked(p_token, user_id, v_now) ELSE 0 END
                  >= v_tx2.amount - tb_overdraft(p_token, p_op, v_tx2.to_user_id)
            RETURNING balance, has_lots INTO v_from_bal, v_has;
        IF NOT FOUND THEN RETURN jsonb_build_object('s', 2); END IF;
        IF v_has THEN
            v_lots := tb_lots_take(p_token, v_tx2.to_user_id, v_tx2.amount, v_now);
        END IF;
        UPDATE tb_accounts SET balance = balance + v_tx2.amount
            WHERE token = p_token AND user_id = v_tx2.from_user_id RETURNING balance INTO v_to_bal;
        -- The original sender's lots get back exactly what the transfer took from them.
        v_back := tb_lots_give_back(p_token, v_tx2.lots, v_tx2.amount, false);
        v_lots := CASE WHEN v_lots IS NULL THEN v_back WHEN v_back IS NULL THEN v_lots
                       ELSE left(v_lots, -1) || ',' || substr(v_back, 2) END;
        INSERT INTO tb_transactions (id, token, type, from_user_id, to_user_id, amount, from_balance_after,
                                     to_balance_after, created_at, metadata, idempotency_key, request_hash, reason,
                                     reverses_id, lots)
            VALUES (p_op->>'id', p_token, 'reversal', v_tx2.to_user_id, v_tx2.from_user_id, v_tx2.amount,
                    v_from_bal, v_to_bal, v_now, p_op->>'meta', v_key, p_op->>'hash', p_op->>'reason', v_tx2.id,
                    v_lots)
            RETURNING * INTO v_tx;
        v_tx2 := NULL;

    ELSIF v_kind = 'grant' THEN
        IF p_op ? 'from' THEN  -- funded: the funder is debited as a transfer's sender
            UPDATE tb_accounts SET balance = balance - v_amount
                WHERE token = p_token AND user_id = p_op->>'from'
                  AND balance - CASE WHEN has_lots THEN tb_lots_locked(p_token, user_id, v_now) ELSE 0 END
                      >= v_amount - tb_overdraft(p_token, p_op, p_op->>'from')
                RETURNING balance, has_lots INTO v_from_bal, v_has;
            IF NOT FOUND THEN RETURN jsonb_build_object('s', 2); END IF;
            IF v_has THEN
                v_lots := tb_lots_take(p_token, p_op->>'from', v_amount, v_now);
            END IF;
        ELSE  -- minted from supply, under the mint's cap (tb_apply locked the token row first)
            SELECT * INTO v_token FROM tb_tokens WHERE symbol = p_token FOR UPDATE;
            IF v_token.total_supply::numeric + v_amount
                    > LEAST(COALESCE(v_token.max_supply, 9223372036854775807)::numeric,
                            9223372036854775807 - tb_overdraft_total(p_token)) THEN
                RETURN jsonb_build_object('s', 3);
            END IF;
            UPDATE tb_tokens SET total_supply = total_supply + v_amount WHERE symbol = p_token;
        END IF;
        UPDATE tb_accounts SET balance = balance + v_amount, has_lots = true
            WHERE token = p_token AND user_id = p_op->>'to' RETURNING balance INTO v_to_bal;
        INSERT INTO tb_lots (token, id, user_id, amount, remaining, expires_at, available_at, category, created_at)
            VALUES (p_token, p_op->>'id', p_op->>'to', v_amount, v_amount, (p_op->>'expires_at')::timestamptz,
                    (p_op->>'available_at')::timestamptz, p_op->>'category', v_now);
        INSERT INTO tb_transactions (id, token, type, from_user_id, to_user_id, amount, from_balance_after,
                                     to_balance_after, created_at, metadata, idempotency_key, request_hash, reason,
                                     lots, expires_at, available_at, category)
            VALUES (p_op->>'id', p_token, 'grant', p_op->>'from', p_op->>'to', v_amount, v_from_bal, v_to_bal, v_now,
                    p_op->>'meta', v_key, p_op->>'hash', p_op->>'reason', v_lots,
                    (p_op->>'expires_at')::timestamptz, (p_op->>'available_at')::timestamptz, p_op->>'category')
            RETURNING * INTO v_tx;

    ELSIF v_kind = 'expire' THEN
        SELECT * INTO v_lot FROM tb_lots WHERE token = p_token AND id = p_op->>'lot_id';
        IF NOT FOUND OR v_lot.user_id IS DISTINCT FROM p_op->>'from' OR v_lot.remaining <= 0
           OR v_lot.expires_at IS NULL OR v_lot.expires_at > v_now THEN
            RETURN jsonb_build_object('s', 0);  -- nothing to do (also what a second sweeper finds)
        END IF;
        UPDATE tb_lots SET remaining = 0 WHERE token = p_token AND id = v_lot.id;
        UPDATE tb_accounts SET balance = balance - v_lot.remaining
            WHERE token = p_token AND user_id = v_lot.user_id RETURNING balance INTO v_from_bal;
        UPDATE tb_accounts SET balance = balance + v_lot.remaining
            WHERE token = p_token AND user_id = p_op->>'to' RETURNING balance INTO v_to_bal;
        INSERT INTO tb_transactions (id, token, type, from_user_id, to_user_id, amount, from_balance_after,
                                     to_balance_after, created_at, metadata, reason, lots)
            VALUES (p_op->>'id', p_token, 'expire', v_lot.user_id, p_op->>'to', v_lot.remaining, v_from_bal,
                    v_to_bal, v_now, p_op->>'meta', p_op->>'reason',
                    '[[' || to_json(v_lot.id)::text || ',"' || v_lot.remaining || '"]]')
            RETURNING * INTO v_tx;
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

-- tb_controls_refusal(token, op, now) -> {s} | NULL: as in 0009, with grants: a funded grant's funder is debited as
-- a transfer's sender is (its spend window counts the grant) and the owner credited as a transfer's receiver; an
-- expiry is never refused (no control applies to it). The status that refuses ``op`` under its accounts'
-- controls, or NULL (allowed; a replay or resend is always allowed: it answers what was written). Debits: a
-- transfer's, burn's and hold's sender, a funded grant's funder and a reversal's original receiver; credits: a
-- transfer's, mint's and grant's receiver, a capture's hold receiver, a reversal's original sender. A void releases held funds to their owner
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
    v_counted boolean := v_kind IN ('transfer', 'burn', 'hold') OR (v_kind = 'grant' AND p_op ? 'from');
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
    ELSIF v_kind = 'grant' THEN
        v_debit := p_op->>'from';
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

-- tb_apply_controlled(token, op) -> {s, t, h}: as in 0010, a funded grant counted in its funder's spend window as
-- a transfer is.
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
    IF (v_res->>'s')::int = 0 AND (p_op->>'kind' IN ('transfer', 'burn', 'hold')
                                   OR (p_op->>'kind' = 'grant' AND p_op ? 'from')) THEN
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

-- tb_apply_transfers(token, ops, atomic) -> json | NULL: as in 0010, with the lots of the call's senders: when a
-- sender has lots (the flag comes with the rows the call locks, so a call whose senders have none reads no lot
-- row), their open lots are read once, after the locks, into arrays in spend order; each debit of such a sender
-- is checked against its balance less what its lots hold locked, takes from its spendable lots in order, and
-- records its moves; the lots that changed are written once at the end (an atomic call that fails writes none).
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
        SELECT array_agg(ctid), array_agg(balance), array_agg(has_lots) INTO v_tid, v_old, v_lotted FROM (
            SELECT ctid, balance, has_lots FROM tb_accounts WHERE token = p_token AND user_id = ANY (v_uid)
            ORDER BY user_id FOR UPDATE) s;
        IF coalesce(array_length(v_old, 1), 0) < array_length(v_uid, 1) THEN
            RAISE EXCEPTION 'tokenbank: new accounts' USING ERRCODE = 'TB003';
        END IF;
    EXCEPTION WHEN SQLSTATE 'TB003' THEN
        INSERT INTO tb_accounts (token, user_id, balance, held)
            SELECT p_token, u, 0, 0 FROM unnest(v_uid) u ORDER BY u COLLATE "C" ON CONFLICT DO NOTHING;
        SELECT array_agg(ctid), array_agg(balance), array_agg(has_lots) INTO v_tid, v_old, v_lotted FROM (
            SELECT ctid, balance, has_lots FROM tb_accounts WHERE token = p_token AND user_id = ANY (v_uid)
            ORDER BY user_id FOR UPDATE) s;
    END;
    v_lots := true = ANY (v_lotted) AND EXISTS (SELECT 1 FROM unnest(v_fi) f WHERE v_lotted[f]);
    IF v_lots THEN
        SELECT array_agg(id), array_agg(r), array_agg(remaining), array_agg(expires_at), array_agg(available_at)
            INTO l_id, l_own, l_rem, l_exp, l_av
            FROM (SELECT l.id, u.r, l.remaining, l.expires_at, l.available_at
                  FROM unnest(v_uid) WITH ORDINALITY AS u(u, r)
                       CROSS JOIN LATERAL (  -- an index probe per account with lots, whatever the statistics
                           SELECT l.* FROM tb_lots l  -- say (OFFSET 0 keeps the subquery from becoming a join)
                           WHERE l.token = p_token AND l.user_id = u.u AND l.remaining > 0 OFFSET 0) l
                  WHERE v_lotted[u.r]
                  ORDER BY u.r, l.expires_at ASC NULLS LAST, l.id COLLATE "C") s;
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

    IF v_lots THEN  -- each lot the call took from, once, by its key
        FOR v_k IN 1..COALESCE(cardinality(l_id), 0) LOOP
            CONTINUE WHEN l_rem[v_k] = l_old[v_k];
            UPDATE tb_lots SET remaining = l_rem[v_k] WHERE token = p_token AND id = l_id[v_k];
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

-- tb_apply(token, ops, atomic) -> json: as in 0008, the token row locked first for a grant minted from supply too
-- (as for a mint), before the accounts' rows.
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
        -- Read after the locks: a control set before any of them was taken is seen.
        v_controlled := EXISTS (SELECT 1 FROM tb_account_controls WHERE token = p_token AND user_id = ANY (v_ids));
    END IF;

    IF NOT p_atomic THEN
        FOR v_op IN SELECT value FROM jsonb_array_elements(p_ops) LOOP
            v_items := v_items || CASE WHEN v_controlled THEN tb_apply_controlled(p_token, v_op) ELSE tb_apply_one(p_token, v_op) END;
        END LOOP;
        RETURN to_json(v_items);
    END IF;

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
        RETURN to_json(v_items);
    EXCEPTION WHEN SQLSTATE 'TB001' THEN
        DECLARE
            v_detail jsonb;
        BEGIN
            GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
            SELECT json_agg(CASE WHEN n - 1 = (v_detail->>'idx')::int THEN (v_detail->'res')::json
                                 ELSE json_build_object('s', 14) END ORDER BY n)
                INTO v_results FROM jsonb_array_elements(p_ops) WITH ORDINALITY AS e(value, n);
            RETURN v_results;
        END;
    END;
END;
$fn$;

-- tb_lots_json(lots) -> text | NULL: lot moves as a Redis entry or hold carries them (a JSON array, or its text)
-- as tb_transactions.lots and tb_holds.lots keep them (compact JSON text; NULL: none).
CREATE OR REPLACE FUNCTION tb_lots_json(p_lots jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE jsonb_typeof(p_lots)
               WHEN 'array' THEN CASE WHEN jsonb_array_length(p_lots) > 0 THEN replace(p_lots::text, ', ', ',') END
               WHEN 'string' THEN NULLIF(NULLIF(p_lots #>> '{}', ''), '[]')
           END
$fn$;

-- tb_replicate_batch(token, entries) -> bigint: as in 0012, with lots. A ``grant`` entry credits its owner (and
-- debits its funder, or adds to the supply when minted) and creates its lot (times in µs, like created_at); an
-- ``expire`` entry moves from the lot's owner to the breakage account; each entry's ``lots`` moves are applied to
-- the lots' ``remaining`` and kept on its row, a grant's ``expires_at``, ``available_at`` and ``category`` too;
-- a hold's ``lots`` (from its Redis JSON) are kept on its row; a lot's owner gets ``has_lots``. Entries without
-- lots cost what they did: the lot work runs only when an inserted row made a lot or moved one.
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
    v_lotted jsonb;    -- the new rows that made a lot (grants) or moved lots
    v_lot record;
    v_left bigint;
BEGIN
    WITH e AS (
        SELECT * FROM jsonb_to_recordset(p_entries) AS x(
            seq bigint, id text, type text, from_user_id text, to_user_id text, amount bigint,
            from_balance_after bigint, to_balance_after bigint, created_at bigint, metadata text,
            idempotency_key text, request_hash text, reason text, hold_id text, reverses_id text, lots jsonb,
            expires_at bigint, available_at bigint, category text)
    ), ins AS (
        INSERT INTO tb_transactions (seq, id, token, type, from_user_id, to_user_id, amount, from_balance_after,
                                     to_balance_after, created_at, metadata, idempotency_key, request_hash,
                                     reason, hold_id, reverses_id, lots, expires_at, available_at, category)
        OVERRIDING SYSTEM VALUE
        SELECT seq, id, p_token, type, from_user_id, to_user_id, amount, from_balance_after, to_balance_after,
               tb_from_us(created_at), metadata, idempotency_key, request_hash, reason, hold_id, reverses_id,
               tb_lots_json(lots), tb_from_us(expires_at), tb_from_us(available_at), category
        FROM e ORDER BY seq
        ON CONFLICT (id) DO NOTHING
        RETURNING seq, id, type, from_user_id, to_user_id, amount, hold_id, created_at, lots, expires_at,
                  available_at, category
    ), d AS (
        -- each inserted row's change to its sender (balance, held) and to its receiver, summed per account
        SELECT v.u, sum(v.b)::bigint AS b, sum(v.h)::bigint AS h
        FROM ins, LATERAL (VALUES
            (ins.from_user_id,
             CASE ins.type WHEN 'void' THEN ins.amount WHEN 'capture' THEN 0 ELSE -ins.amount END,
             CASE ins.type WHEN 'hold' THEN ins.amount WHEN 'capture' THEN -ins.amount
                           WHEN 'void' THEN -ins.amount ELSE 0 END,
             ins.type IN ('transfer', 'burn', 'reversal', 'hold', 'capture', 'void', 'expire')
             OR (ins.type = 'grant' AND ins.from_user_id IS NOT NULL)),
            (ins.to_user_id, ins.amount, 0, ins.type IN ('transfer', 'mint', 'capture', 'reversal', 'grant', 'expire'))
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
    SELECT s.n, s.top, s.last, s.supply, s.holds, s.lotted, f.users, f.held
        INTO v_count, v_max, v_last, v_supply, v_holds, v_lotted, v_users, v_held
        FROM (SELECT count(*) AS n, max(seq) AS top, max(created_at) AS last,
                     sum(CASE type WHEN 'mint' THEN amount WHEN 'burn' THEN -amount
                                   WHEN 'grant' THEN CASE WHEN from_user_id IS NULL THEN amount END END)::bigint
                         AS supply,
                     jsonb_agg(jsonb_build_object('type', type, 'amount', amount, 'hold_id', hold_id))
                         FILTER (WHERE hold_id IS NOT NULL) AS holds,
                     jsonb_agg(jsonb_build_object('id', id, 'type', type, 'to', to_user_id, 'amount', amount,
                                                  'at', created_at, 'expires_at', expires_at,
                                                  'available_at', available_at, 'category', category, 'lots', lots))
                         FILTER (WHERE type = 'grant' OR lots IS NOT NULL) AS lotted
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

    IF v_lotted IS NOT NULL THEN
        -- The batch's new lots first (a move of this batch may take from one), then every lot's moves added up,
        -- each lot by its key in id order. A move of a lot PostgreSQL does not have, or one that would take a lot
        -- below zero, is an entry out of order (or lost): raised as a check failure, like a fall of held.
        INSERT INTO tb_lots (token, id, user_id, amount, remaining, expires_at, available_at, category, created_at)
            SELECT p_token, x->>'id', x->>'to', (x->>'amount')::bigint, (x->>'amount')::bigint,
                   (x->>'expires_at')::timestamptz, (x->>'available_at')::timestamptz, x->>'category',
                   (x->>'at')::timestamptz
            FROM jsonb_array_elements(v_lotted) x WHERE x->>'type' = 'grant' ORDER BY x->>'id' COLLATE "C"
            ON CONFLICT DO NOTHING;
        INSERT INTO tb_accounts AS a (token, user_id, balance, held, has_lots)
            SELECT DISTINCT p_token, x->>'to' COLLATE "C", 0::bigint, 0::bigint, true
            FROM jsonb_array_elements(v_lotted) x WHERE x->>'type' = 'grant' ORDER BY 2
            ON CONFLICT (token, user_id) DO UPDATE SET has_lots = true WHERE NOT a.has_lots;
        FOR v_lot IN
            SELECT m->>0 AS id, sum((m->>1)::bigint) AS n
            FROM jsonb_array_elements(v_lotted) x, jsonb_array_elements((x->>'lots')::jsonb) m
            GROUP BY m->>0 HAVING sum((m->>1)::bigint) <> 0 ORDER BY (m->>0) COLLATE "C"
        LOOP
            UPDATE tb_lots SET remaining = remaining - v_lot.n WHERE token = p_token AND id = v_lot.id
                RETURNING remaining INTO v_left;
            IF NOT FOUND OR v_left < 0 THEN
                RAISE EXCEPTION 'tokenbank: lot % % by entries out of order', v_lot.id,
                                CASE WHEN FOUND THEN 'taken below zero' ELSE 'missing' END
                    USING ERRCODE = 'check_violation';
            END IF;
        END LOOP;
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
                                       expires_at, created_at, metadata, lots)
            SELECT g.hold_id, p_token, i.h->>'from_user_id', i.h->>'to_user_id', (i.h->>'amount')::bigint,
                   CASE WHEN g.captured THEN g.captured_amount ELSE 0 END,
                   CASE WHEN g.captured THEN 'captured' WHEN g.voided THEN 'voided' ELSE 'pending' END,
                   tb_from_us((i.h->>'expires_at')::bigint), tb_from_us((i.h->>'created_at')::bigint),
                   i.h->>'metadata', tb_lots_json(i.h->'lots')
            FROM g JOIN info i USING (hold_id) ORDER BY g.hold_id
            ON CONFLICT (id) DO UPDATE SET
                status = CASE WHEN excluded.status = 'captured' THEN 'captured'
                              WHEN excluded.status = 'voided' AND t.status = 'pending' THEN 'voided'
                              ELSE t.status END,
                captured_amount = CASE WHEN excluded.status = 'captured' THEN excluded.captured_amount
                                       ELSE t.captured_amount END,
                lots = COALESCE(t.lots, excluded.lots)
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
