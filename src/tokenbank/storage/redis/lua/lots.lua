-- lots.lua: credit lots (grants that expire or mature), the semantics of docs/lots.md; scripts.py prepends it
-- after lib.lua and before ops.lua, which calls it.
-- KEYS, ARGV: lib.lua's (17 lots, 18 lotsdone, 19 lotexp). Returns: nothing (a library).
--
-- Layout: K_LOTS is a hash account -> JSON array of its open lots (remaining > 0) in spend order: expires_at
-- ascending, none last, then id in byte order. Each lot is a positional array (half the JSON work of an object,
-- and a third less memory): [id, remaining, amount, expires_at, available_at, category, created_at], amounts as
-- decimal strings, times as us since the epoch (strings), null where unset. An account whose lots are all used
-- up has no field, and a token without open lots has no K_LOTS key: that is what keeps accounts without lots
-- (almost) free, one EXISTS per script call. A lot with nothing left moves to K_LOTSDONE (lot id -> the same
-- array with the account id appended), where a void or a reversal that gives back to it finds it. K_LOTEXP lists the
-- open lots that have an expiry ("<lot id>:<account id>", score = expires_at), for the expiry sweep; lot ids
-- never contain ':' (malformed() refuses such a grant), so the first ':' ends the id.
-- Every write goes through hset/hdel/zset, so an atomic batch that fails puts the lots back too.

local L_ID, L_REM, L_AMOUNT, L_EXP, L_AVAIL, L_CAT, L_CREATED, L_USER = 1, 2, 3, 4, 5, 6, 7, 8

local lots_any = nil -- whether the token has any open lot: read once per script call, set by a grant or refill
                     -- (left true after a rollback: that costs an HGET, never a wrong answer)

local function lots_of(user) -- the account's open lots in spend order (a list), nil for none
    if lots_any == nil then lots_any = redis.call('EXISTS', K_LOTS) == 1 end
    if not lots_any then return nil end
    local js = redis.call('HGET', K_LOTS, user)
    return js and cjson.decode(js) or nil
end

local function put_lots(user, lots) -- the account's open lots after a change (none left: its field goes)
    if #lots > 0 then
        hset(K_LOTS, user, cjson.encode(lots))
        lots_any = true
    elseif redis.call('HEXISTS', K_LOTS, user) == 1 then
        hdel(K_LOTS, user)
    end
end

local function spendable(lot, now_n)
    local avail, exp = lot[L_AVAIL], lot[L_EXP]
    return (avail == NULL or tonumber(avail) <= now_n) and (exp == NULL or tonumber(exp) > now_n)
end

local function locked(lots, now_n) -- what the lots hold that cannot be spent at now (pending or expired)
    local sum = '0'
    for _, lot in ipairs(lots) do
        if not spendable(lot, now_n) then sum = add(sum, lot[L_REM]) end
    end
    return sum
end

local function byte_less(a, b) -- byte order (Lua's < follows the server's locale)
    for i = 1, math.min(#a, #b) do
        local x, y = string.byte(a, i), string.byte(b, i)
        if x ~= y then return x < y end
    end
    return #a < #b
end

local NEVER = math.huge
local function spends_before(a, b) -- spend order: sooner expiry first, no expiry last, then id
    local x = a[L_EXP] ~= NULL and tonumber(a[L_EXP]) or NEVER
    local y = b[L_EXP] ~= NULL and tonumber(b[L_EXP]) or NEVER
    if x ~= y then return x < y end
    return byte_less(a[L_ID], b[L_ID])
end

local function insert_lot(lots, lot)
    local at = #lots + 1
    for i, other in ipairs(lots) do
        if spends_before(lot, other) then
            at = i
            break
        end
    end
    table.insert(lots, at, lot)
end

local function exp_member(user, id) return id .. ':' .. user end

local function retire(user, lot) -- a lot with nothing left: out of the expiry index, into K_LOTSDONE
    lot[L_USER] = user
    hset(K_LOTSDONE, lot[L_ID], cjson.encode(lot))
    lot[L_USER] = nil
    if lot[L_EXP] ~= NULL then zset(K_LOTEXP, exp_member(user, lot[L_ID]), false) end
end

local function add_lot(user, id, amount, expires_at, available_at, category, created_at) -- a grant's new lot
    local js = redis.call('HGET', K_LOTS, user)
    local lots = js and cjson.decode(js) or {}
    insert_lot(lots, { id, amount, amount, expires_at or NULL, available_at or NULL, category or NULL, created_at })
    put_lots(user, lots)
    if expires_at then zset(K_LOTEXP, exp_member(user, id), expires_at) end
end

-- Take `amount` from the account's spendable lots in spend order; the moves {{id, n}, ...}, nil for none.
-- The caller has checked the debit (balance less what is locked).
local function take_lots(user, lots, amount, now_n)
    local moves, left, kept = {}, amount, {}
    for _, lot in ipairs(lots) do
        if left ~= '0' and spendable(lot, now_n) then
            local n = cmp(lot[L_REM], left) < 0 and lot[L_REM] or left
            lot[L_REM], left = sub(lot[L_REM], n), sub(left, n)
            moves[#moves + 1] = { lot[L_ID], n }
        end
        if lot[L_REM] == '0' then retire(user, lot) else kept[#kept + 1] = lot end
    end
    if #moves == 0 then return nil end
    put_lots(user, kept)
    return moves
end

-- Give back to the account's lots: each {id, n} of `moves` (n positive) adds n to that lot's remaining, even
-- past its expiry (the next sweep takes it). A lot that is not the account's (or gone) is skipped: that part
-- stays plain. Returns the moves made as a transaction records them, {{id, "-n"}, ...} (maybe empty).
local function give_back(user, moves)
    local js = redis.call('HGET', K_LOTS, user)
    local lots, back = js and cjson.decode(js) or {}, {}
    for _, move in ipairs(moves) do
        local id, n, lot = move[1], move[2], nil
        for _, open in ipairs(lots) do
            if open[L_ID] == id then
                lot = open
                break
            end
        end
        if lot then
            lot[L_REM] = add(lot[L_REM], n)
        else
            local done = redis.call('HGET', K_LOTSDONE, id)
            lot = done and cjson.decode(done) or nil
            if lot and lot[L_USER] == user then
                hdel(K_LOTSDONE, id)
                lot[L_USER], lot[L_REM] = nil, n
                insert_lot(lots, lot)
                if lot[L_EXP] ~= NULL then zset(K_LOTEXP, exp_member(user, id), lot[L_EXP]) end
            else
                lot = nil
            end
        end
        if lot then back[#back + 1] = { id, '-' .. n } end
    end
    if #back > 0 then put_lots(user, lots) end
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
    local lots = lots_of(user)
    if not lots then return nil end
    for i, lot in ipairs(lots) do
        if lot[L_ID] == id then
            if lot[L_EXP] == NULL or tonumber(lot[L_EXP]) > now_n then return nil end
            local r = lot[L_REM]
            table.remove(lots, i)
            lot[L_REM] = '0'
            retire(user, lot)
            put_lots(user, lots)
            return r
        end
    end
    return nil
end
