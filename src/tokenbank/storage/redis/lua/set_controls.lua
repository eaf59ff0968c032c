-- set_controls.lua: change one account's controls and write their audit entry, atomically.
-- KEYS: 1 ctrl hash, 2 bal hash, 3 held hash, 4 audit hash, 5 audit id counter, 6 token hash
-- ARGV: 1 account id, 2 the change (ControlsRecord.to_json), 3 the JSON fields it replaces (a JSON array),
--       4 audit action
-- Returns the status (status.lua is prepended): ST_OK; ST_ACCOUNT_CLOSED = the account is closed already;
--   ST_ACCOUNT_NOT_EMPTY = the change closes an account that still has a balance or held funds;
--   ST_OVERDRAFT_IN_USE = the change leaves the account owing more than its overdraft allows;
--   ST_OVERDRAFT_TOO_LARGE = the raised overdraft would take the total supply plus every limit past MAX_UNITS.
-- The token hash's "overdrafts" field keeps the sum of every overdraft limit (decimal.lua, overdraft_total).
-- The audit entry's details are the account's controls after the change (the ctrl hash's new value).
local user = ARGV[1]
local current = redis.call('HGET', KEYS[1], user)
local controls = current and cjson.decode(current) or { user_id = user }
if controls.closed then return ST_ACCOUNT_CLOSED end
local old_od = controls.od
local change = cjson.decode(ARGV[2])
for _, name in ipairs(cjson.decode(ARGV[3])) do controls[name] = change[name] end
if controls.closed and (redis.call('HEXISTS', KEYS[2], user) == 1 or redis.call('HEXISTS', KEYS[3], user) == 1) then
    return ST_ACCOUNT_NOT_EMPTY -- the write scripts delete zero balances and held amounts: present = not zero
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
local encoded = cjson.encode(controls)
redis.call('HSET', KEYS[1], user, encoded)
local t = redis.call('TIME')
local entry = cjson.encode({ action = ARGV[4], details = encoded, ts = t[1] .. string.format('%06d', tonumber(t[2])) })
redis.call('HSET', KEYS[4], redis.call('INCR', KEYS[5]), entry)
return ST_OK
