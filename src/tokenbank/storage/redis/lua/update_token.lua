-- update_token.lua: change token settings and write a "token.configure" audit entry, atomically.
-- KEYS: 1 token hash, 2 audit hash, 3 audit id counter
-- ARGV: 1 changes as a JSON object (string values; null removes the field); 2 audit details (JSON text)
-- Returns: JSON {"s": status, "token": [field, value, ...]} (status.lua is prepended): ST_OK = changed;
--   ST_SUPPLY_CAP_EXCEEDED = the new max_supply is below total_supply (nothing changed);
--   ST_TOKEN_NOT_INITIALIZED = the token does not exist (nothing changed, "token" empty).
--   Supplies are compared as decimal strings (never as Lua numbers, which lose precision above 2^53).
if redis.call('EXISTS', KEYS[1]) == 0 then return '{"s":' .. ST_TOKEN_NOT_INITIALIZED .. ',"token":[]}' end
local changes = cjson.decode(ARGV[1])
local cap = changes['max_supply']
if cap ~= nil and cap ~= cjson.null then
    local total = redis.call('HGET', KEYS[1], 'total_supply')
    if #cap < #total or (#cap == #total and cap < total) then
        return '{"s":' .. ST_SUPPLY_CAP_EXCEEDED .. ',"token":' .. cjson.encode(redis.call('HGETALL', KEYS[1])) .. '}'
    end
end
for k, v in pairs(changes) do
    if v == cjson.null then redis.call('HDEL', KEYS[1], k) else redis.call('HSET', KEYS[1], k, v) end
end
local t = redis.call('TIME')
local entry = cjson.encode({ action = 'token.configure', details = ARGV[2],
                             ts = t[1] .. string.format('%06d', tonumber(t[2])) })
redis.call('HSET', KEYS[2], redis.call('INCR', KEYS[3]), entry)
return '{"s":' .. ST_OK .. ',"token":' .. cjson.encode(redis.call('HGETALL', KEYS[1])) .. '}'
