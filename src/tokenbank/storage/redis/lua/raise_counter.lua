-- raise_counter.lua: raise an integer counter (the seq or audit id counter) to at least a floor.
-- KEYS: 1 the counter key
-- ARGV: 1 the floor (an integer)
-- Returns: {old value, 1} if it was raised to the floor, {old value, 0} if it was at or above it already.
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) return {cur, 1} end
return {cur, 0}
