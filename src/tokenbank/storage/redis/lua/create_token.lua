-- create_token.lua: create the token hash with its initial mint and audit entry, or return the existing one.
-- KEYS: the 19 token keys listed in lib.lua (status.lua, decimal.lua, lib.lua and ops.lua are prepended)
-- ARGV: 1-3 as in lib.lua; 4 token fields as a JSON object of strings; 5 details of the
--   "token.initialize" audit entry (JSON text); 6 the initial mint as a JSON array of 0 or 1 op
-- Returns: JSON {"token": [field, value, ...], "r": [op result...] | null (token existed)}
--   A refused initial mint leaves nothing behind (the token is not created).
if redis.call('EXISTS', K_TOKEN) == 1 then
    return '{"r":null,"token":' .. cjson.encode(redis.call('HGETALL', K_TOKEN)) .. '}'
end
local now = now_us()
local fields = { 'total_supply', '0' }
for k, v in pairs(cjson.decode(ARGV[4])) do
    fields[#fields + 1] = k
    fields[#fields + 1] = v
end
redis.call('HSET', K_TOKEN, unpack(fields))
audit('token.initialize', ARGV[5], now)
local out, err = apply_all(cjson.decode(ARGV[6]), true, now)
if err then
    redis.call('DEL', K_TOKEN)
    return err
end
local ok_prefix = '{"s":' .. ST_OK .. ','
for _, r in ipairs(out) do
    if string.sub(r, 1, #ok_prefix) ~= ok_prefix then
        redis.call('DEL', K_TOKEN)
        return '{"r":[' .. table.concat(out, ',') .. '],"token":[]}'
    end
end
return '{"r":[' .. table.concat(out, ',') .. '],"token":' .. cjson.encode(redis.call('HGETALL', K_TOKEN)) .. '}'
