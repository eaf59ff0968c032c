-- lib.lua: code shared by the write scripts; scripts.py prepends it to apply.lua and create_token.lua.
--
-- KEYS (the same 14 for every write script; all share the token's hash tag, so one cluster slot):
--   1 token  2 seq  3 bal  4 held  5 lb  6 tx  7 idem  8 rev  9 holds  10 hexp  11 stream  12 audit
--   13 auditseq  14 htrim
-- ARGV (first three, common): 1 history key prefix ("{p:SYM}:h:"), 2 history retention per account,
--   3 stream MAXLEN ("0" = never trim)
--
-- EXACTNESS: balances, amounts and supply are decimal strings. They change only through HINCRBY (exact
-- int64 in Redis) and are compared with cmp() below; integer replies are never used for money because Lua
-- turns them into doubles (exact only up to 2^53). Lua numbers are used for seq numbers and microsecond
-- timestamps only, which stay below 2^53.
local K_TOKEN, K_SEQ, K_BAL, K_HELD, K_LB, K_TX, K_IDEM = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local K_REV, K_HOLDS, K_HEXP, K_STREAM, K_AUDIT, K_AUDITSEQ = KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local K_HTRIM = KEYS[14]
local HIST_PREFIX, RETENTION, STREAM_MAXLEN = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local MAX_UNITS = '9223372036854775807'
local NULL = cjson.null

-- decimal strings (non-negative, canonical) ---------------------------------------------------------
local function cmp(a, b)
    if #a ~= #b then return #a < #b and -1 or 1 end
    for i = 1, #a do
        local x, y = string.byte(a, i), string.byte(b, i)
        if x ~= y then return x < y and -1 or 1 end
    end
    return 0
end

local function add(a, b)
    local out, carry, i, j = {}, 0, #a, #b
    while i > 0 or j > 0 or carry > 0 do
        local d = carry + (i > 0 and string.byte(a, i) - 48 or 0) + (j > 0 and string.byte(b, j) - 48 or 0)
        out[#out + 1] = string.char(48 + d % 10)
        carry = d >= 10 and 1 or 0
        i, j = i - 1, j - 1
    end
    return string.reverse(table.concat(out))
end

local function sub(a, b) -- a >= b
    local out, borrow, i, j = {}, 0, #a, #b
    while i > 0 do
        local d = string.byte(a, i) - 48 - borrow - (j > 0 and string.byte(b, j) - 48 or 0)
        borrow = d < 0 and 1 or 0
        out[#out + 1] = string.char(48 + d + 10 * borrow)
        i, j = i - 1, j - 1
    end
    local s = string.gsub(string.reverse(table.concat(out)), '^0+', '')
    return s == '' and '0' or s
end

-- writes, with an undo log while an atomic batch runs ------------------------------------------------
local undo = nil          -- a list when atomic: every change's previous value, replayed backwards to roll back
local touched = {}        -- accounts whose balance changed: leaderboard and zero clean-up at commit
local hist, streams, audits, events = {}, {}, {}, {}   -- deferred effects, written only at commit

local function hset(key, field, value)
    if undo then undo[#undo + 1] = { 'h', key, field, redis.call('HGET', key, field) } end
    redis.call('HSET', key, field, value)
end

local function hincr(key, field, delta)
    if undo then undo[#undo + 1] = { 'h', key, field, redis.call('HGET', key, field) } end
    redis.call('HINCRBY', key, field, delta)
    return redis.call('HGET', key, field) -- the exact string, never the (double) integer reply
end

local function zset(key, member, score) -- score false = remove
    if undo then undo[#undo + 1] = { 'z', key, member, redis.call('ZSCORE', key, member) } end
    if score then redis.call('ZADD', key, score, member) else redis.call('ZREM', key, member) end
end

local function next_seq()
    if undo then undo[#undo + 1] = { 's', K_SEQ, redis.call('GET', K_SEQ) } end
    return string.format('%.0f', redis.call('INCR', K_SEQ))
end

local function rollback()
    for i = #undo, 1, -1 do
        local u = undo[i]
        if u[1] == 'h' then
            if u[4] then redis.call('HSET', u[2], u[3], u[4]) else redis.call('HDEL', u[2], u[3]) end
        elseif u[1] == 'z' then
            if u[4] then redis.call('ZADD', u[2], u[4], u[3]) else redis.call('ZREM', u[2], u[3]) end
        elseif u[3] then
            redis.call('SET', u[2], u[3])
        else
            redis.call('DEL', u[2])
        end
    end
    undo, touched, hist, streams, audits, events = {}, {}, {}, {}, {}, {}
end

local function balance(user) return redis.call('HGET', K_BAL, user) or '0' end

local function credit(user, amount)
    touched[user] = true
    return hincr(K_BAL, user, amount)
end

local function debit(user, amount) -- nil when the balance does not cover amount
    if cmp(balance(user), amount) < 0 then return nil end
    touched[user] = true
    return hincr(K_BAL, user, '-' .. amount)
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
    local fields = {}
    for k, v in pairs(t) do
        fields[#fields + 1] = k
        fields[#fields + 1] = v
    end
    streams[#streams + 1] = fields
    events[#events + 1] = js
    return js
end

local function commit()
    for user in pairs(touched) do
        local b = redis.call('HGET', K_BAL, user)
        if b and b ~= '0' then
            redis.call('ZADD', K_LB, '-' .. b, user) -- negated: ZRANGE gives balance desc, ties by id asc
        else
            redis.call('ZREM', K_LB, user)
            if b then redis.call('HDEL', K_BAL, user) end
        end
        if redis.call('HGET', K_HELD, user) == '0' then redis.call('HDEL', K_HELD, user) end
    end
    local grown = {}
    for _, e in ipairs(hist) do
        redis.call('ZADD', HIST_PREFIX .. e[1], e[2], e[3])
        grown[e[1]] = true
    end
    for user in pairs(grown) do
        local key = HIST_PREFIX .. user
        local extra = redis.call('ZCARD', key) - RETENTION
        if extra > 0 then
            redis.call('ZREMRANGEBYRANK', key, 0, extra - 1)
            redis.call('HSET', K_HTRIM, user, '1')
        end
    end
    for _, fields in ipairs(streams) do
        if STREAM_MAXLEN ~= '0' then
            redis.call('XADD', K_STREAM, 'MAXLEN', '~', STREAM_MAXLEN, '*', unpack(fields))
        else
            redis.call('XADD', K_STREAM, '*', unpack(fields))
        end
    end
    for _, entry in ipairs(audits) do
        redis.call('HSET', K_AUDIT, redis.call('INCR', K_AUDITSEQ), entry)
    end
    for _, js in ipairs(events) do
        redis.call('PUBLISH', K_TOKEN .. ':events', js) -- balance events channel (storage/redis/events.py)
    end
    touched, hist, streams, audits, events = {}, {}, {}, {}, {}
end

local function now_us()
    local t = redis.call('TIME')
    return t[1] .. string.format('%06d', tonumber(t[2]))
end
