-- spendable.lua: some accounts' balances and open credit lots, read at one moment (backend.spendable_balances
-- sends it as a plain EVALSHA through the read auto-pipeline: one round trip, shared with concurrent reads).
-- KEYS: 1 bal hash, 2 lots hash (account -> its open lots, lots.lua)
-- ARGV: the account ids
-- Returns: 2 * #ARGV values: each account's balance, then each account's lots JSON (nil where none)
local out, n = {}, #ARGV
for _, key in ipairs(KEYS) do
    for first = 1, n, 1000 do -- unpack has a stack limit
        local part = redis.call('HMGET', key, unpack(ARGV, first, math.min(first + 999, n)))
        for i = 1, #part do out[#out + 1] = part[i] end
    end
end
return out
