-- ops.lua: one ledger op, the same semantics as tb_apply_one (PostgreSQL: sql/migrations/versions/0001_initial.sql).
-- Needs status.lua, decimal.lua, lib.lua and lots.lua before it.
-- apply_one(op, now) -> status, result JSON ({"s":..,"t":[..],"h":..}) or nil.
--   op: {kind, id, from, to, amount, key, hash, meta, reason, hold_id, expires_at, reverses_id, available_at,
--        category, lot_id, ts, audit, id2}
--       (amounts are decimal strings of base units, times are microseconds since the epoch as strings)
-- A transaction that moved lots carries lots = [[lot id, "signed units"], ...] (never an empty list); a grant
-- carries its lot's expires_at, available_at and category; a hold keeps its lot moves in the hold JSON's lots.
-- Every check comes before the op's first write, so a refused op changes nothing.

local function ok(txs, hold)
    return ST_OK, '{"s":' .. ST_OK .. ',"t":[' .. table.concat(txs, ',') .. '],"h":' .. (hold or 'null') .. '}'
end

local function stored(status, tx_id) -- an already written transaction (and its hold) as an op result
    local js = redis.call('HGET', K_TX, tx_id)
    local t = cjson.decode(js)
    local hold = t.hold_id and redis.call('HGET', K_HOLDS, t.hold_id) or nil
    return status, '{"s":' .. status .. ',"t":[' .. js .. '],"h":' .. (hold or 'null') .. '}', t
end

local function new_tx(op, now, kind, from, to, amount, from_after, to_after)
    return { id = op.id, type = kind, from_user_id = from, to_user_id = to, amount = amount,
             from_balance_after = from_after, to_balance_after = to_after, created_at = now,
             metadata = op.meta, idempotency_key = op.key, request_hash = op.key and op.hash or nil,
             reason = op.reason }
end

local function settle(op, now) -- capture (all or part, releasing the rest) or void a pending hold
    local hjs = redis.call('HGET', K_HOLDS, op.hold_id)
    if not hjs then return ST_HOLD_NOT_FOUND end
    local h = cjson.decode(hjs)
    if h.status ~= 'pending' then return ST_HOLD_NOT_PENDING end
    local captured = '0'
    if op.kind == 'capture' then
        if tonumber(h.expires_at) <= tonumber(now) then return ST_HOLD_EXPIRED end
        captured = op.amount or h.amount
        if cmp(captured, h.amount) > 0 then return ST_CAPTURE_EXCEEDS_HOLD end
    end
    local rest = sub(h.amount, captured)
    change_held(h.from_user_id, '-' .. h.amount)
    local from_after = credit(h.from_user_id, rest)
    local back = nil -- what the release gives back to the lots the hold took, from the last one
    if rest ~= '0' and type(h.lots) == 'table' then
        back = give_back(h.from_user_id, released(h.lots, rest))
        if #back == 0 then back = nil end
    end
    local to_after = credit(h.to_user_id, captured)
    h.status = op.kind == 'capture' and 'captured' or 'voided'
    h.captured_amount = captured
    hjs = cjson.encode(h)
    hset(K_HOLDS, h.id, hjs)
    zset(K_HEXP, h.id, false)
    local txs = {}
    if captured ~= '0' then
        local t = new_tx(op, now, 'capture', h.from_user_id, h.to_user_id, captured, from_after, to_after)
        t.hold_id = h.id
        txs[#txs + 1] = t
    end
    if rest ~= '0' then
        local t = new_tx(op, now, 'void', h.from_user_id, h.to_user_id, rest, from_after, to_after)
        t.hold_id, t.lots = h.id, back
        if captured ~= '0' then
            t.id, t.idempotency_key, t.request_hash = op.id2, nil, nil
            t.reason = op.reason or 'released by partial capture'
        end
        txs[#txs + 1] = t
    end
    return ST_OK, txs, hjs
end

-- account controls: checked before an op's first write, in the order of tb_controls_refusal (PostgreSQL) ------
local ctrl_any = nil -- whether the token has any controls, read once per script call
local ctrl_seen = {} -- account -> its decoded controls (false: none), read once per script call (set_controls
                     -- is a script of its own, so they cannot change during this one)
-- Per account with a spend window: a list of its counted debits ("time:amount", the time in microseconds, in
-- time order) and, in a hash, "total:oldest:newest": their running total and the times of the list's first and
-- last entries (so a check knows without reading the list whether any left the window, and a spend that it goes
-- at the end), both named after the token's tag ("{tag}:ctrl" -> "{tag}:sw:<id>", "{tag}:window"). Spends leave
-- from the head; appending is the cheapest write Redis has, a sorted set cost a transfer ~10 % more.
local TAG = string.sub(K_CTRL, 1, -5)
local SPEND_PREFIX, K_WINDOW = TAG .. 'sw:', TAG .. 'window'
local COUNTED = { transfer = true, burn = true, hold = true, grant = true } -- the debits a spend window counts
                                                                          -- (a grant's when funded)

local function controls_of(a, b) -- the controls of accounts a and b (either may be nil): one HMGET for both
    if ctrl_any == nil then ctrl_any = redis.call('EXISTS', K_CTRL) == 1 end
    if not ctrl_any then return nil, nil end
    local want = {}
    if a and ctrl_seen[a] == nil then want[#want + 1] = a end
    if b and b ~= a and ctrl_seen[b] == nil then want[#want + 1] = b end
    if #want > 0 then
        local found = redis.call('HMGET', K_CTRL, unpack(want))
        for i, user in ipairs(want) do ctrl_seen[user] = found[i] and cjson.decode(found[i]) or false end
    end
    return a and ctrl_seen[a] or nil, b and ctrl_seen[b] or nil
end

local function frozen_now(c, now) return c['until'] == nil or tonumber(c['until']) > tonumber(now) end

local function window_state(user) -- the account's running total and its oldest and newest spend's times (text;
    -- nil: none)
    local state = window_now[user]
    if state then return state[1], state[2], state[3] end
    local v = redis.call('HGET', K_WINDOW, user)
    if not v then return '0', nil, nil end
    local total, oldest, newest = string.match(v, '^(%d+):(%d*):(%d*)$')
    if oldest == '' then return total, nil, nil end
    return total, oldest, newest
end

local function keep_window(user, total, oldest, newest)
    window_now[user] = { total, oldest, newest }
    hset(K_WINDOW, user, total .. ':' .. (oldest or '') .. ':' .. (newest or ''))
end

local function window_spent(user, c, now) -- what the window ending now holds, after forgetting what left it
    local total, oldest, newest = window_state(user)
    local cut = tonumber(now) - c.ws * 1000000
    if oldest == nil or tonumber(oldest) > cut then
        window_now[user] = { total, oldest, newest }
        return total
    end
    local key, dropped, left, first = SPEND_PREFIX .. user, {}, '0', nil
    repeat -- the spends at the head that left the window, in chunks (through the undo log: an atomic batch that
        -- fails puts them back)
        local chunk = redis.call('LRANGE', key, #dropped, #dropped + 99)
        for _, entry in ipairs(chunk) do
            local at, amount = string.match(entry, '^(%d+):(%d+)$')
            if tonumber(at) > cut then
                first = at
                break
            end
            dropped[#dropped + 1] = entry
            left = add(left, amount)
        end
    until first or #chunk < 100
    ltrim_head(key, dropped)
    total = sub(total, left)
    keep_window(user, total, first, first and newest or nil)
    return total
end

local function refusal(op, now) -- the status refusing op under its accounts' controls, or nil
    local kind, debit, credit, amount = op.kind, nil, nil, op.amount
    if kind == 'transfer' then
        debit, credit = op.from, op.to
    elseif kind == 'hold' or kind == 'burn' then
        debit = op.from
    elseif kind == 'mint' then
        credit = op.to
    elseif kind == 'grant' then
        debit, credit = op.from, op.to
    elseif kind == 'capture' then
        local hjs = redis.call('HGET', K_HOLDS, op.hold_id)
        if not hjs then return nil end
        local h = cjson.decode(hjs)
        if h.status ~= 'pending' then return nil end
        credit, amount = h.to_user_id, op.amount or h.amount
    elseif kind == 'reversal' then
        local ojs = redis.call('HGET', K_TX, op.reverses_id)
        if not ojs then return nil end
        local o = cjson.decode(ojs)
        if o.type ~= 'transfer' or redis.call('HEXISTS', K_REV, o.id) == 1 then return nil end -- apply_one says why
        debit, credit, amount = o.to_user_id, o.from_user_id, o.amount
    else
        return nil -- a void releases held funds to their owner, an expiry is the lot's end: never refused
    end
    local d, c = controls_of(debit, credit)
    if (d and d.closed) or (c and c.closed) then return ST_ACCOUNT_CLOSED end
    if d and d.df and frozen_now(d, now) then return ST_DEBITS_FROZEN end
    if c and c.cf and frozen_now(c, now) then return ST_CREDITS_FROZEN end
    if d and d.wa and COUNTED[kind] and cmp(add(window_spent(debit, d, now), amount), d.wa) > 0 then
        return ST_SPEND_LIMIT_EXCEEDED
    end
    if c and c.max then
        local after = sadd(balance(credit), amount)
        if not negative(after) and cmp(after, c.max) > 0 then return ST_MAX_BALANCE_EXCEEDED end
    end
    return nil
end

local function overdraft(user) -- the account's overdraft limit (a decimal string), nil for none
    local d = controls_of(user)
    return d and d.od or nil
end

local function record_spend(op, now) -- after a counted debit: the sender's window holds it
    if not COUNTED[op.kind] then return end
    local d = controls_of(op.from)
    if not (d and d.wa) then return end
    local total, oldest, newest = window_state(op.from)
    local at = tonumber(now)
    local key, t = SPEND_PREFIX .. op.from, string.format('%.0f', at)
    if newest == nil or at >= tonumber(newest) then
        rpush(key, t .. ':' .. op.amount)
        newest = t
    else -- stamped before the newest spend (another process's clock, an import): into its place in time
        for _, later in ipairs(redis.call('LRANGE', key, 0, -1)) do
            if tonumber(string.match(later, '^(%d+):')) > at then
                linsert_before(key, later, t .. ':' .. op.amount)
                break
            end
        end
    end
    keep_window(op.from, add(total, op.amount), (oldest == nil or at < tonumber(oldest)) and t or oldest, newest)
end

local function spend(user, amount, now) -- debit(), lots first: the balance after (nil: refused) and the moves
    -- (nil: none). The check leaves out what the account's lots hold locked (pending or expired).
    local od = overdraft(user)
    local held_back, pending = locked_lots(user, now)
    if not held_back then return debit(user, amount, od), nil end
    if held_back ~= '0' and not within(ssub(ssub(balance(user), held_back), amount), od) then return nil end
    local after = debit(user, amount, od)
    if not after then return nil end
    return after, take_lots(user, amount, now, pending)
end

local function supply_refusal(amount) -- ST_SUPPLY_CAP_EXCEEDED when minting amount passes the cap, else nil
    local cap = redis.call('HGET', K_TOKEN, 'max_supply') or MAX_UNITS
    if cmp(cap, MAX_UNITS) > 0 then cap = MAX_UNITS end
    local room = sub(MAX_UNITS, overdraft_total(K_TOKEN, K_CTRL)) -- what accounts may owe stays holdable
    if cmp(room, cap) < 0 then cap = room end
    if cmp(add(redis.call('HGET', K_TOKEN, 'total_supply'), amount), cap) > 0 then return ST_SUPPLY_CAP_EXCEEDED end
    return nil
end

local function apply_one(op, default_now)
    if op.kind == 'expire' then op.key, op.hash = nil, nil end -- an expiry has no idempotency key
    if op.key then
        local tx_id = redis.call('HGET', K_IDEM, op.key)
        if tx_id then
            local status, js, t = stored(ST_REPLAYED, tx_id)
            if t.request_hash ~= op.hash then return ST_IDEMPOTENCY_CONFLICT end
            return status, js
        end
    end
    if redis.call('HEXISTS', K_TX, op.id) == 1 then
        if op.ts then return ST_DUPLICATE_TRANSACTION end
        -- The client resent an op whose first attempt was applied (its reply was lost): answer, don't redo.
        return stored(ST_REPLAYED, op.id)
    end
    local now, kind, txs, hold = op.ts or default_now, op.kind, nil, nil
    local refused = refusal(op, now)
    if refused then return refused end
    if kind == 'transfer' then
        local from_after, moves = spend(op.from, op.amount, now)
        if not from_after then return ST_INSUFFICIENT_BALANCE end
        local t = new_tx(op, now, 'transfer', op.from, op.to, op.amount, from_after, credit(op.to, op.amount))
        t.lots = moves
        txs = { t }
    elseif kind == 'mint' then
        local refused_mint = supply_refusal(op.amount)
        if refused_mint then return refused_mint end
        hincr(K_TOKEN, 'total_supply', op.amount)
        txs = { new_tx(op, now, 'mint', nil, op.to, op.amount, nil, credit(op.to, op.amount)) }
    elseif kind == 'burn' then
        local from_after, moves = spend(op.from, op.amount, now)
        if not from_after then return ST_INSUFFICIENT_BALANCE end
        hincr(K_TOKEN, 'total_supply', '-' .. op.amount)
        local t = new_tx(op, now, 'burn', op.from, nil, op.amount, from_after, nil)
        t.lots = moves
        txs = { t }
    elseif kind == 'hold' then
        local from_after, moves = spend(op.from, op.amount, now)
        if not from_after then return ST_INSUFFICIENT_BALANCE end
        change_held(op.from, op.amount)
        hold = cjson.encode({ id = op.hold_id, from_user_id = op.from, to_user_id = op.to, amount = op.amount,
                              captured_amount = '0', status = 'pending', expires_at = op.expires_at,
                              created_at = now, metadata = op.meta, lots = moves })
        hset(K_HOLDS, op.hold_id, hold)
        zset(K_HEXP, op.hold_id, op.expires_at)
        local t = new_tx(op, now, 'hold', op.from, op.to, op.amount, from_after, balance(op.to))
        t.hold_id, t.lots = op.hold_id, moves
        txs = { t }
    elseif kind == 'grant' then -- a new lot of the receiver's, minted or funded by `from` (a debit like any)
        local from_after, moves = nil, nil
        if op.from then
            from_after, moves = spend(op.from, op.amount, now)
            if not from_after then return ST_INSUFFICIENT_BALANCE end
        else
            local refused_mint = supply_refusal(op.amount)
            if refused_mint then return refused_mint end
            hincr(K_TOKEN, 'total_supply', op.amount)
        end
        local to_after = credit(op.to, op.amount)
        add_lot(op.to, op.id, op.amount, op.expires_at, op.available_at, op.category, now)
        local t = new_tx(op, now, 'grant', op.from, op.to, op.amount, from_after, to_after)
        t.lots, t.expires_at, t.available_at, t.category = moves, op.expires_at, op.available_at, op.category
        txs = { t }
    elseif kind == 'expire' then -- a lot's end: what is left of it goes to the breakage account, no control applies
        local r = expire_lot(op.from, op.lot_id, tonumber(now))
        if not r then return ok({}) end -- nothing to do (gone, used up, not expired, or swept already)
        local from_after = hincr(K_BAL, op.from, '-' .. r)
        touched[op.from] = from_after
        local t = new_tx(op, now, 'expire', op.from, op.to, r, from_after, credit(op.to, r))
        t.lots = { { op.lot_id, r } }
        txs = { t }
    elseif kind == 'capture' or kind == 'void' then
        local status
        status, txs, hold = settle(op, now)
        if status ~= ST_OK then return status end
    else -- reversal (kinds are checked by malformed())
        local ojs = redis.call('HGET', K_TX, op.reverses_id)
        if not ojs then return ST_TRANSACTION_NOT_FOUND end
        local o = cjson.decode(ojs)
        if o.type ~= 'transfer' then return ST_NOT_REVERSIBLE end
        if redis.call('HEXISTS', K_REV, o.id) == 1 then return ST_ALREADY_REVERSED end
        local from_after, moves = spend(o.to_user_id, o.amount, now)
        if not from_after then return ST_INSUFFICIENT_BALANCE end
        local t = new_tx(op, now, 'reversal', o.to_user_id, o.from_user_id, o.amount, from_after,
                         credit(o.from_user_id, o.amount))
        if type(o.lots) == 'table' then -- the original sender's lots get back what the transfer took
            moves = moves or {}
            for _, move in ipairs(give_back(o.from_user_id, o.lots)) do moves[#moves + 1] = move end
            if #moves == 0 then moves = nil end
        end
        t.reverses_id, t.lots = o.id, moves
        hset(K_REV, o.id, op.id)
        txs = { t }
    end
    record_spend(op, now)
    local first = txs[1]
    for i, t in ipairs(txs) do txs[i] = put_tx(t) end
    if op.audit then
        audit(op.audit, cjson.encode({ transaction_id = first.id, type = first.type,
                                       from_user_id = first.from_user_id or NULL,
                                       to_user_id = first.to_user_id or NULL, amount = first.amount,
                                       reason = first.reason or NULL }), now)
    end
    return ok(txs, hold)
end

local NEEDS = { transfer = { 'from', 'to', 'amount' }, mint = { 'to', 'amount' }, burn = { 'from', 'amount' },
                hold = { 'from', 'to', 'amount', 'hold_id', 'expires_at' }, capture = { 'hold_id', 'id2' },
                void = { 'hold_id' }, reversal = { 'reverses_id' }, grant = { 'to', 'amount' },
                expire = { 'lot_id', 'from', 'to' } }

local function units(v) -- a canonical positive decimal string of at most 2^63-1
    return type(v) == 'string' and string.match(v, '^[1-9]%d*$') ~= nil and cmp(v, MAX_UNITS) <= 0
end

local function malformed(op) -- checked for every op before the first write, so a bad op cannot half-apply
    local needs = NEEDS[op.kind]
    if not needs or type(op.id) ~= 'string' then return 'unknown op kind or missing id' end
    for _, name in ipairs(needs) do
        if type(op[name]) ~= 'string' then return 'op ' .. op.kind .. ' needs ' .. name end
    end
    if op.amount ~= nil and not units(op.amount) then return 'amount must be 1..2^63-1 base units' end
    if op.kind == 'grant' and string.find(op.id, ':', 1, true) then return 'a lot id cannot contain ":"' end
    return nil
end

-- apply a list of ops; atomic: the first refused op rolls back the others, which then report ST_BATCH_ABORTED.
local function apply_all(ops, atomic, now)
    for i, op in ipairs(ops) do
        local problem = malformed(op)
        if problem then return nil, redis.error_reply('tokenbank: op ' .. i .. ': ' .. problem) end
    end
    if atomic then undo = {} end
    local out = {}
    for i, op in ipairs(ops) do
        local status, js = apply_one(op, now)
        if atomic and status ~= ST_OK and status ~= ST_REPLAYED then
            rollback()
            for j = 1, #ops do out[j] = '{"s":' .. ST_BATCH_ABORTED .. '}' end
            out[i] = js or ('{"s":' .. status .. '}')
            undo = nil
            return out, nil
        end
        out[i] = js or ('{"s":' .. status .. '}')
    end
    undo = nil
    commit()
    return out, nil
end
