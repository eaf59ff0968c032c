-- lib.lua: code shared by the write scripts; scripts.py prepends it (after status.lua and decimal.lua) to apply.lua
-- and create_token.lua.
--
-- KEYS (the same 19 for every write script; all share the token's hash tag, so one cluster slot):
--   1 token  2 seq  3 bal  4 held  5 lb  6 tx  7 idem  8 rev  9 holds  10 hexp  11 stream  12 audit
--   13 auditseq  14 htrim  15 chain (the journal in seq order, "seq:id" per entry, for the chain sealer)
--   16 ctrl (account controls: account -> JSON, see storage/redis/controls.py)
--   17 lots (lot id -> JSON of an open credit lot, remaining > 0, with its account id; per account sets name
--      the open lots in spend order and the ones with an available_at: see lots.lua)
--   18 lotsdone (lot id -> JSON of a lot with nothing left, with its account id: a void or reversal may refill it)
--   19 lotexp (sorted set "<lot id>:<account id>" of the open lots with an expiry, score = expires_at in us)
-- ARGV (first three, common): 1 history key prefix ("{p:SYM}:h:"), 2 history retention per account,
--   3 stream MAXLEN ("0" = never trim)
--
-- EXACTNESS: balances, amounts and supply are decimal strings. They change only through HINCRBY (exact
-- int64 in Redis) and are compared with cmp() (decimal.lua). An integer reply becomes a Lua double, exact only
-- below 2^53: HINCRBY's reply is used as the new balance only below that bound, else the exact string is
-- read back with HGET. Lua numbers are used for seq numbers and microsecond timestamps, far below 2^53.
local K_TOKEN, K_SEQ, K_BAL, K_HELD, K_LB, K_TX, K_IDEM = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local K_REV, K_HOLDS, K_HEXP, K_STREAM, K_AUDIT, K_AUDITSEQ = KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local K_HTRIM, K_CHAIN, K_CTRL = KEYS[14], KEYS[15], KEYS[16]
local K_LOTS, K_LOTSDONE, K_LOTEXP = KEYS[17], KEYS[18], KEYS[19]
local HIST_PREFIX, RETENTION, STREAM_MAXLEN = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local NULL = cjson.null
local EXACT = 9007199254740992 -- 2^53: integers below it are exact as Lua numbers

-- writes, with an undo log while an atomic batch runs ------------------------------------------------
local undo = nil          -- a list when atomic: every change's previous value, replayed backwards to roll back
local touched = {}        -- account -> its balance now, for accounts this call changed (leaderboard, zeros)
local held_now = {}       -- account -> its held amount now, for accounts this call changed (zeros removed)
local hist, audits, events = {}, {}, {}   -- deferred effects, written only at commit
local chained = {}         -- "seq:id" of each transaction of this call, appended to the chain list at commit
local seq_start, seq_now = nil, nil -- the seq counter, read once per call and written back at commit
local window_now = {}     -- account -> { total, oldest, newest } of its spend window as ops.lua last read or wrote it
                          -- this call (a rollback forgets it with the changes it mirrors)

local function hset(key, field, value)
    if undo then undo[#undo + 1] = { 'h', key, field, redis.call('HGET', key, field) } end
    redis.call('HSET', key, field, value)
end

local function hdel(key, field)
    if undo then undo[#undo + 1] = { 'h', key, field, redis.call('HGET', key, field) } end
    redis.call('HDEL', key, field)
end

local function hincr(key, field, delta)
    if undo then undo[#undo + 1] = { 'h', key, field, redis.call('HGET', key, field) } end
    local value = redis.call('HINCRBY', key, field, delta)
    if value < EXACT and value > -EXACT then return string.format('%.0f', value) end
    return redis.call('HGET', key, field) -- the exact string: the double reply is rounded at or above 2^53
end

local function zset(key, member, score) -- score false = remove
    if undo then undo[#undo + 1] = { 'z', key, member, redis.call('ZSCORE', key, member) } end
    if score then redis.call('ZADD', key, score, member) else redis.call('ZREM', key, member) end
end

local function rpush(key, value)
    if undo then undo[#undo + 1] = { 'rpush', key } end
    redis.call('RPUSH', key, value)
end

local function linsert_before(key, pivot, value) -- before the first entry equal to pivot
    if undo then undo[#undo + 1] = { 'linsert', key, value } end
    redis.call('LINSERT', key, 'BEFORE', pivot, value)
end

local function ltrim_head(key, dropped) -- remove the list's first #dropped entries (dropped: those entries)
    if #dropped == 0 then return end
    if undo then undo[#undo + 1] = { 'ltrim', key, dropped } end
    redis.call('LTRIM', key, #dropped, -1)
end

local function next_seq()
    if not seq_now then
        seq_start = tonumber(redis.call('GET', K_SEQ) or '0')
        seq_now = seq_start
    end
    seq_now = seq_now + 1
    return string.format('%.0f', seq_now)
end

local function rollback()
    for i = #undo, 1, -1 do
        local u = undo[i]
        local kind, key = u[1], u[2]
        if kind == 'h' then
            if u[4] then redis.call('HSET', key, u[3], u[4]) else redis.call('HDEL', key, u[3]) end
        elseif kind == 'z' then
            if u[4] then redis.call('ZADD', key, u[4], u[3]) else redis.call('ZREM', key, u[3]) end
        elseif kind == 'rpush' then
            redis.call('RPOP', key)
        elseif kind == 'linsert' then
            redis.call('LREM', key, 1, u[3]) -- equal entries are alike: whichever goes, the list is as before
        else -- 'ltrim': the dropped entries back at the head, in their order
            for j = #u[3], 1, -1 do redis.call('LPUSH', key, u[3][j]) end
        end
    end
    undo, touched, held_now, hist, audits, events, chained = {}, {}, {}, {}, {}, {}, {}
    window_now = {}
    seq_now = seq_start
end

local function balance(user) return redis.call('HGET', K_BAL, user) or '0' end

local function credit(user, amount)
    local after = hincr(K_BAL, user, amount)
    touched[user] = after
    return after
end

local function debit(user, amount, od) -- nil when the balance does not cover amount (down to -od: the
    -- account's overdraft, nil for none)
    if undo then -- atomic: checked first, then changed through the undo log
        if not within(ssub(balance(user), amount), od) then return nil end
        local after = hincr(K_BAL, user, '-' .. amount)
        touched[user] = after
        return after
    end
    -- One call when covered: take the amount, and put it back if that went below zero (below -od). The
    -- sign of the double reply is exact at any magnitude, the exact string is read back where the double
    -- may be rounded, and nobody can observe the moment in between (the script is atomic), so a refused
    -- debit changes nothing.
    local value = redis.call('HINCRBY', K_BAL, user, '-' .. amount)
    local after
    if value < 0 then
        if od then after = value > -EXACT and string.format('%.0f', value) or redis.call('HGET', K_BAL, user) end
        if not (after and within(after, od)) then
            if redis.call('HINCRBY', K_BAL, user, amount) == 0 then redis.call('HDEL', K_BAL, user) end
            return nil
        end
    else
        after = value < EXACT and string.format('%.0f', value) or redis.call('HGET', K_BAL, user)
    end
    touched[user] = after
    return after
end

local function change_held(user, delta)
    held_now[user] = hincr(K_HELD, user, delta)
end

local function audit(action, details, now)
    audits[#audits + 1] = cjson.encode({ action = action, details = details, ts = now })
end

-- the ledger entry: stored by id, indexed per account by seq, appended to the stream for the sync worker
local function put_tx(t)
    t.seq = next_seq()
    local js = cjson.encode(t)
    hset(K_TX, t.id, js)
    if t.idempotency_key then hset(K_IDEM, t.idempotency_key, t.id) end
    if t.from_user_id then hist[#hist + 1] = { t.from_user_id, t.seq, t.id } end
    if t.to_user_id then hist[#hist + 1] = { t.to_user_id, t.seq, t.id } end
    events[#events + 1] = js
    chained[#chained + 1] = string.format('%.0f', t.seq) .. ':' .. t.id
    return js
end

local function each_chunk(list, size, fn) -- fn(part) for consecutive slices (unpack has a stack limit)
    for first = 1, #list, size do fn({ unpack(list, first, math.min(first + size - 1, #list)) }) end
end

local function commit()
    if seq_now and seq_now ~= seq_start then redis.call('SET', K_SEQ, string.format('%.0f', seq_now)) end
    -- The leaderboard: each account this call changed is scored once, however often it changed, with
    -- one variadic ZADD (and ZREM/HDEL for emptied accounts) per call.
    -- Only positive balances are ranked: an overdrawn account is taken off the board (and keeps its balance).
    local ranked, emptied, unranked, unheld = {}, {}, {}, {}
    for user, b in pairs(touched) do
        if b == '0' then
            emptied[#emptied + 1] = user
        elseif negative(b) then
            unranked[#unranked + 1] = user
        else
            ranked[#ranked + 1] = '-' .. b -- negated: ZRANGE gives balance desc, ties by id asc
            ranked[#ranked + 1] = user
        end
    end
    for user, h in pairs(held_now) do
        if h == '0' then unheld[#unheld + 1] = user end
    end
    each_chunk(ranked, 1000, function(part) redis.call('ZADD', K_LB, unpack(part)) end)
    each_chunk(emptied, 1000, function(part)
        redis.call('ZREM', K_LB, unpack(part))
        redis.call('HDEL', K_BAL, unpack(part))
    end)
    each_chunk(unranked, 1000, function(part) redis.call('ZREM', K_LB, unpack(part)) end)
    each_chunk(unheld, 1000, function(part) redis.call('HDEL', K_HELD, unpack(part)) end)
    local per_user, order = {}, {}
    for _, e in ipairs(hist) do
        local entries = per_user[e[1]]
        if not entries then
            entries = {}
            per_user[e[1]] = entries
            order[#order + 1] = e[1]
        end
        entries[#entries + 1] = e[2]
        entries[#entries + 1] = e[3]
    end
    for _, user in ipairs(order) do
        local key = HIST_PREFIX .. user
        local entries = per_user[user]
        each_chunk(entries, 1000, function(part) redis.call('ZADD', key, unpack(part)) end)
        local extra = redis.call('ZCARD', key) - RETENTION
        if extra > 0 then
            redis.call('ZREMRANGEBYRANK', key, 0, extra - 1)
            redis.call('HSET', K_HTRIM, user, '1')
        end
    end
    for _, js in ipairs(events) do -- the ledger stream: one field, the transaction JSON (sync/worker.py)
        if STREAM_MAXLEN ~= '0' then
            redis.call('XADD', K_STREAM, 'MAXLEN', '~', STREAM_MAXLEN, '*', 'tx', js)
        else
            redis.call('XADD', K_STREAM, '*', 'tx', js)
        end
    end
    for _, entry in ipairs(audits) do
        redis.call('HSET', K_AUDIT, redis.call('INCR', K_AUDITSEQ), entry)
    end
    each_chunk(chained, 1000, function(part) redis.call('RPUSH', K_CHAIN, unpack(part)) end)
    if #events > 0 then -- balance events: one message per call, a JSON array (storage/redis/events.py); a
        -- shard channel, so on a cluster only the token's own master and replicas carry it
        redis.call('SPUBLISH', K_TOKEN .. ':events', '[' .. table.concat(events, ',') .. ']')
    end
    touched, held_now, hist, audits, events, chained = {}, {}, {}, {}, {}, {}
    seq_start, seq_now = nil, nil
end

local function now_us()
    local t = redis.call('TIME')
    return t[1] .. string.format('%06d', tonumber(t[2]))
end
