-- update_token.lua: change token settings and write a "token.configure" audit entry, atomically.
-- KEYS: 1 token hash, 2 audit hash, 3 audit id counter
-- ARGV: 1 changes as a JSON object (string values; null removes the field); 2 audit details (JSON text)
-- Returns: the token hash as a flat [field, value, ...] array, or an error if the token does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('tokenbank: token not initialized') end
for k, v in pairs(cjson.decode(ARGV[1])) do
    if v == cjson.null then redis.call('HDEL', KEYS[1], k) else redis.call('HSET', KEYS[1], k, v) end
end
local t = redis.call('TIME')
local entry = cjson.encode({ action = 'token.configure', details = ARGV[2],
                             ts = t[1] .. string.format('%06d', tonumber(t[2])) })
redis.call('HSET', KEYS[2], redis.call('INCR', KEYS[3]), entry)
return redis.call('HGETALL', KEYS[1])
