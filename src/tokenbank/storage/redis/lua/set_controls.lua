-- set_controls.lua: change one account's controls and write their audit entry, atomically.
-- KEYS: 1 ctrl hash, 2 bal hash, 3 held hash, 4 audit hash, 5 audit id counter, 6 token hash, 7 window hash
--       (account -> "total:oldest:newest" of its spend list), 8 the account's spend list ("time:amount", in time
--       order), 9 the account's spend-order set of open credit lots ("{tag}:lo:<account>", lots.lua)
-- ARGV: 1 account id, 2 the change (ControlsRecord.to_json), 3 the JSON fields it replaces (a JSON array),
--       4 audit action, 5 the time of the change in microseconds ('': the server's)
-- Returns the status (status.lua is prepended): ST_OK; ST_ACCOUNT_CLOSED = the account is closed already;
--   ST_ACCOUNT_NOT_EMPTY = the change closes an account that still has a balance, held funds or a lot with
--   something left;
--   ST_OVERDRAFT_IN_USE = the change leaves the account owing more than its overdraft allows;
--   ST_OVERDRAFT_TOO_LARGE = the raised overdraft would take the total supply plus every limit past MAX_UNITS.
-- The token hash's "overdrafts" field keeps the sum of every overdraft limit (decimal.lua, overdraft_total).
-- The audit entry's details are the account's controls after the change (the ctrl hash's new value).
-- A change of limits forgets the spends that left the window in force until then (every spend when the window is
-- removed) and counts the rest again, so what a changed window counts never depends on when spends were pruned.
local user = ARGV[1]
local current = redis.call('HGET', KEYS[1], user)
local controls = current and cjson.decode(current) or { user_id = user }
if controls.closed then return ST_ACCOUNT_CLOSED end
local old_od, old_ws, limits = controls.od, controls.ws, false
local change = cjson.decode(ARGV[2])
for _, name in ipairs(cjson.decode(ARGV[3])) do
    controls[name] = change[name]
    if name == 'ws' then limits = true end
end
if controls.closed and (redis.call('HEXISTS', KEYS[2], user) == 1 or redis.call('HEXISTS', KEYS[3], user) == 1
                        or redis.call('EXISTS', KEYS[9]) == 1) then
    return ST_ACCOUNT_NOT_EMPTY -- the write scripts delete zero balances and held amounts, and a set loses
                                -- a lot once it is used up: present = not zero
end
local balance = redis.call('HGET', KEYS[2], user)
if balance and string.sub(balance, 1, 1) == '-' then -- it owes: the overdraft must still cover the debt
    local debt, od = string.sub(balance, 2), controls.od
    if not od or cmp(debt, od) > 0 then return ST_OVERDRAFT_IN_USE end
end
local new_od = controls.od
if new_od ~= old_od then
    local others = overdraft_total(KEYS[6], KEYS[1])
    if old_od then others = sub(others, old_od) end
    if new_od and (not old_od or cmp(new_od, old_od) > 0) then
        local supply = redis.call('HGET', KEYS[6], 'total_supply') or '0'
        if cmp(add(add(supply, others), new_od), MAX_UNITS) > 0 then return ST_OVERDRAFT_TOO_LARGE end
    end
    redis.call('HSET', KEYS[6], 'overdrafts', new_od and add(others, new_od) or others)
end
local now = ARGV[5]
if now == '' then
    local t = redis.call('TIME')
    now = t[1] .. string.format('%06d', tonumber(t[2]))
end
if limits and old_ws then
    if not controls.ws then
        redis.call('DEL', KEYS[8])
        redis.call('HDEL', KEYS[7], user)
    else -- the list is in time order: the spends that left the window are a run at its head
        local cut, gone, total, oldest, newest = tonumber(now) - old_ws * 1000000, 0, '0', nil, nil
        for _, entry in ipairs(redis.call('LRANGE', KEYS[8], 0, -1)) do
            local at, amount = string.match(entry, '^(%d+):(%d+)$')
            if tonumber(at) <= cut then
                gone = gone + 1
            else
                total, oldest, newest = add(total, amount), oldest or at, at
            end
        end
        if gone > 0 then redis.call('LTRIM', KEYS[8], gone, -1) end
        if oldest then
            redis.call('HSET', KEYS[7], user, total .. ':' .. oldest .. ':' .. newest)
        else
            redis.call('HDEL', KEYS[7], user)
        end
    end
end
local encoded = cjson.encode(controls)
redis.call('HSET', KEYS[1], user, encoded)
local entry = cjson.encode({ action = ARGV[4], details = encoded, ts = now })
redis.call('HSET', KEYS[4], redis.call('INCR', KEYS[5]), entry)
return ST_OK
