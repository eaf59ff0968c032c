-- append_audit.lua: append one audit entry stamped with the server's clock.
-- KEYS: 1 audit hash, 2 audit id counter
-- ARGV: 1 action, 2 details (JSON text)
-- Returns: the new entry's id (an integer).
local t = redis.call('TIME')
local id = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], id, cjson.encode({ action = ARGV[1], details = ARGV[2],
                                               ts = t[1] .. string.format('%06d', tonumber(t[2])) }))
return id
