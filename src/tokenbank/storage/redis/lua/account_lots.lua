-- account_lots.lua: one account's open credit lots in spend order, read at one moment (backend.get_lots sends it as
-- a plain EVALSHA through the read auto-pipeline).
-- KEYS: 1 the account's spend-order set ("{tag}:lo:<account>", lots.lua), 2 lots hash (lot id -> open lot)
-- ARGV: none
-- Returns: the lots' JSON arrays (lots.lua), in spend order
local ids, out = redis.call('ZRANGE', KEYS[1], 0, -1), {}
for first = 1, #ids, 1000 do -- unpack has a stack limit
    local rows = redis.call('HMGET', KEYS[2], unpack(ids, first, math.min(first + 999, #ids)))
    for i = 1, #rows do
        if rows[i] then out[#out + 1] = rows[i] end
    end
end
return out
