-- set_supply.lua: set the token's total supply, only if Redis still holds the value the caller saw.
-- KEYS: 1 token hash
-- ARGV: 1 total supply seen, 2 new total supply (decimal strings of base units)
-- Returns: 1 if set, 0 if the supply changed since it was seen (nothing written).
if (redis.call('HGET', KEYS[1], 'total_supply') or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'total_supply', ARGV[2])
return 1
