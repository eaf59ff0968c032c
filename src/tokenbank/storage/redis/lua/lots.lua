-- lots.lua: credit lots (grants that expire or mature), the semantics of docs/lots.md; scripts.py prepends it
-- after lib.lua and before ops.lua, which calls it.
-- KEYS, ARGV: lib.lua's (17 lots, 18 lotsdone, 19 lotexp). Returns: nothing (a library).
--
-- Layout: K_LOTS is a hash lot id -> the open lot (remaining > 0), a positional array (half the JSON work of an
-- object, and a third less memory): [id, remaining, amount, expires_at, available_at, category, created_at,
-- account id], amounts as decimal strings, times as us since the epoch (strings), null where unset. Per account,
-- named after the token's tag like the spend windows (ops.lua):
--   "{tag}:lo:<account>" a sorted set of its open lot ids in spend order: score = expires_at, +inf for none; equal
--     scores sort by member bytes, which is the spend order's tie-break (the id in byte order);
--   "{tag}:la:<account>" a sorted set of its open lots that have an available_at (score = available_at), so the
--     pending ones are one range read.
-- A debit reads what is locked (the pending lots, and the expired ones not swept yet: the head of the spend order
-- up to now), then walks the spendable rest of the spend order only as far as the amount needs: its cost follows
-- the lots it touches and the lots locked, not every open lot of the account.
-- A token without open lots has no K_LOTS key: that is what keeps accounts without lots (almost) free, one EXISTS
-- per script call. A lot with nothing left moves to K_LOTSDONE (lot id -> the same array), where a void or a
-- reversal that gives back to it finds it. K_LOTEXP lists the open lots that have an expiry ("<lot id>:<account
-- id>", score = expires_at), for the expiry sweep; lot ids never contain ':' (malformed() refuses such a grant), so
-- the first ':' ends the id.
-- Every write goes through hset/hdel/zset, so an atomic batch that fails puts the lots back too.

local L_ID, L_REM, L_AMOUNT, L_EXP, L_AVAIL, L_CAT, L_CREATED, L_USER = 1, 2, 3, 4, 5, 6, 7, 8
local LOTS_TAG = string.sub(K_LOTS, 1, -5) -- "{tag}:" ("{tag}:lots" less "lots")
local ORDER_PREFIX, AVAIL_PREFIX = LOTS_TAG .. 'lo:', LOTS_TAG .. 'la:'
local NEVER = math.huge
local WALK_FIRST, WALK_MAX = 8, 256 -- lots a debit reads at a time: few at first (most debits touch one or two)

local lots_any = nil -- whether the token has any open lot: read once per script call, set by a grant or refill
                     -- (left true after a rollback: that costs a read, never a wrong answer)

local function any_lots()
    if lots_any == nil then lots_any = redis.call('EXISTS', K_LOTS) == 1 end
    return lots_any
end

local function order_score(lot) return lot[L_EXP] ~= NULL and lot[L_EXP] or 'inf' end

local function exp_member(user, id) return id .. ':' .. user end

local function lots_by_id(ids) -- the open lots of these ids, decoded (a table id -> lot; a missing one is absent)
    local out = {}
    for first = 1, #ids, 1000 do -- unpack has a stack limit
        local part = { unpack(ids, first, math.min(first + 999, #ids)) }
        local rows = redis.call('HMGET', K_LOTS, unpack(part))
        for i, id in ipairs(part) do
            if rows[i] then out[id] = cjson.decode(rows[i]) end
        end
    end
    return out
end

local function put_lot(lot) -- an open lot's new state (its indexes unchanged)
    hset(K_LOTS, lot[L_ID], cjson.encode(lot))
    lots_any = true
end

local function index_lot(user, lot) -- an open lot into its account's sets and the expiry index
    local id = lot[L_ID]
    zset(ORDER_PREFIX .. user, id, order_score(lot))
    if lot[L_AVAIL] ~= NULL then zset(AVAIL_PREFIX .. user, id, lot[L_AVAIL]) end
    if lot[L_EXP] ~= NULL then zset(K_LOTEXP, exp_member(user, id), lot[L_EXP]) end
end

local function retire(user, lot) -- a lot with nothing left: out of the open lots and their indexes, into K_LOTSDONE
    local id = lot[L_ID]
    hdel(K_LOTS, id)
    hset(K_LOTSDONE, id, cjson.encode(lot))
    zset(ORDER_PREFIX .. user, id, false)
    if lot[L_AVAIL] ~= NULL then zset(AVAIL_PREFIX .. user, id, false) end
    if lot[L_EXP] ~= NULL then zset(K_LOTEXP, exp_member(user, id), false) end
end

-- What the account's lots hold locked at now (pending: available_at ahead; expired and not swept: expires_at
-- reached), and the set of the pending ids (a debit's walk skips them); nil when the account has no open lot.
local function locked_lots(user, now)
    if not any_lots() then return nil end
    local order = ORDER_PREFIX .. user
    local head = redis.call('ZRANGE', order, 0, 0, 'WITHSCORES') -- whether it has a lot, and whether one expired
    if #head == 0 then return nil end
    local expired = (tonumber(head[2]) or NEVER) <= tonumber(now)
    local ids, skip = expired and redis.call('ZRANGE', order, '-inf', now, 'BYSCORE') or {}, {}
    local pending = redis.call('ZRANGE', AVAIL_PREFIX .. user, '(' .. now, '+inf', 'BYSCORE')
    for _, id in ipairs(pending) do
        skip[id] = true
        ids[#ids + 1] = id -- a lot is never both: its available_at comes before its expires_at
    end
    local sum = '0'
    for _, lot in pairs(lots_by_id(ids)) do sum = add(sum, lot[L_REM]) end
    return sum, skip
end

local function add_lot(user, id, amount, expires_at, available_at, category, created_at) -- a grant's new lot
    local lot = { id, amount, amount, expires_at or NULL, available_at or NULL, category or NULL, created_at, user }
    put_lot(lot)
    index_lot(user, lot)
end

-- Take `amount` from the account's spendable lots in spend order; the moves {{id, n}, ...}, nil for none.
-- The caller has checked the debit (balance less what is locked); `pending` is locked_lots()'s set. The walk reads
-- the spend order after now (the expired head is locked) a few lots at a time, as far as the amount needs.
local function take_lots(user, amount, now, pending)
    local order, moves, left, offset, size = ORDER_PREFIX .. user, {}, amount, 0, WALK_FIRST
    while left ~= '0' do
        local ids = redis.call('ZRANGE', order, '(' .. now, '+inf', 'BYSCORE', 'LIMIT', offset, size)
        local open = {}
        for _, id in ipairs(ids) do
            if not pending[id] then open[#open + 1] = id end
        end
        local rows, retired = #open > 0 and redis.call('HMGET', K_LOTS, unpack(open)) or {}, 0
        for i, id in ipairs(open) do
            if left == '0' then break end
            local lot = rows[i] and cjson.decode(rows[i]) -- decoded only when it pays (always stored: the sets
            if lot then                                    -- index the open lots only)
                local n = cmp(lot[L_REM], left) < 0 and lot[L_REM] or left
                lot[L_REM], left = sub(lot[L_REM], n), sub(left, n)
                moves[#moves + 1] = { id, n }
                if lot[L_REM] == '0' then
                    retire(user, lot)
                    retired = retired + 1
                else
                    put_lot(lot)
                end
            end
        end
        if #ids < size then break end
        offset = offset + #ids - retired -- the retired lots left the set ahead of the next read
        size = math.min(size * 2, WALK_MAX)
    end
    if #moves == 0 then return nil end
    return moves
end

-- Give back to the account's lots: each {id, n} of `moves` (n positive) adds n to that lot's remaining, even
-- past its expiry (the next sweep takes it). A lot that is not the account's (or gone) is skipped: that part
-- stays plain. Returns the moves made as a transaction records them, {{id, "-n"}, ...} (maybe empty).
local function give_back(user, moves)
    local back = {}
    for _, move in ipairs(moves) do
        local id, n = move[1], move[2]
        local js = redis.call('HGET', K_LOTS, id)
        local lot = js and cjson.decode(js) or nil
        if lot and lot[L_USER] == user then
            lot[L_REM] = add(lot[L_REM], n)
            put_lot(lot)
        elseif not lot then
            local done = redis.call('HGET', K_LOTSDONE, id)
            lot = done and cjson.decode(done) or nil
            if lot and lot[L_USER] == user then
                hdel(K_LOTSDONE, id)
                lot[L_REM] = n
                put_lot(lot)
                index_lot(user, lot)
            else
                lot = nil
            end
        else
            lot = nil -- another account's open lot
        end
        if lot then back[#back + 1] = { id, '-' .. n } end
    end
    return back
end

-- What releasing `rest` of a hold gives back to the lots it took (`taken`, its moves in spend order): from the
-- last lot it took, each up to what the hold took from it; the rest is plain.
local function released(taken, rest)
    local out = {}
    for i = #taken, 1, -1 do
        if rest == '0' then break end
        local n = cmp(taken[i][2], rest) < 0 and taken[i][2] or rest
        out[#out + 1] = { taken[i][1], n }
        rest = sub(rest, n)
    end
    return out
end

-- Expire one lot of `user` at now: its remaining (nil when there is nothing to do: no such open lot of the
-- account, or not expired). The lot is retired; the caller moves the balance.
local function expire_lot(user, id, now_n)
    if not any_lots() then return nil end
    local js = redis.call('HGET', K_LOTS, id)
    local lot = js and cjson.decode(js) or nil
    if not lot or lot[L_USER] ~= user then return nil end
    if lot[L_EXP] == NULL or tonumber(lot[L_EXP]) > now_n then return nil end
    local r = lot[L_REM]
    lot[L_REM] = '0'
    retire(user, lot)
    return r
end
