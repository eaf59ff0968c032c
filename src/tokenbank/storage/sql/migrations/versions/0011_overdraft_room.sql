-- Room for overdrafts in the PostgreSQL write path (migration 0011). With overdrafts, one account may hold more
-- than the total supply (what the others owe), so a mint keeps the total supply plus every overdraft limit within
-- 2^63-1 base units, as a raised limit does (controls.py): then no balance or held amount ever passes what a
-- bigint holds. This file is read by migration 0011 only; its tb_apply_one is 0010's with that one change to the
-- mint, which also locks the token's row before it reads the supply (a raised limit locks it too).

-- tb_overdraft_total(token) -> numeric: every overdraft limit of the token added up (the partial index
-- ix_tb_account_controls_overdraft holds only the accounts that have one).
CREATE OR REPLACE FUNCTION tb_overdraft_total(p_token text) RETURNS numeric
LANGUAGE sql STABLE AS $fn$
    SELECT COALESCE(sum(overdraft), 0) FROM tb_account_controls WHERE token = p_token AND overdraft IS NOT NULL
$fn$;

-- tb_apply_one(token, op) -> {s, t, h}: as in 0010, a mint refused (3) past the smaller of the token's cap and
-- 2^63-1 less every overdraft limit.
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
