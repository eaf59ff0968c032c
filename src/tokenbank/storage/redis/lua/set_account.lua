-- set_account.lua: set one account's balance and held amount, only if Redis still holds the values the caller
-- saw (compare-and-set: a write landing meanwhile is never overwritten). The leaderboard follows the balance
-- (only positive balances are ranked).
-- KEYS: 1 balances hash, 2 held hash, 3 leaderboard zset
-- ARGV: 1 account id, 2 balance seen, 3 held seen, 4 new balance, 5 new held (decimal strings of base units)
-- Returns: 1 if set, 0 if either value changed since it was seen (nothing written).
local b = redis.call('HGET', KEYS[1], ARGV[1]) or '0'
local h = redis.call('HGET', KEYS[2], ARGV[1]) or '0'
if b ~= ARGV[2] or h ~= ARGV[3] then return 0 end
if ARGV[4] == '0' then
    redis.call('HDEL', KEYS[1], ARGV[1]) redis.call('ZREM', KEYS[3], ARGV[1])
elseif string.sub(ARGV[4], 1, 1) == '-' then -- overdrawn: kept, but not ranked
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[4]) redis.call('ZREM', KEYS[3], ARGV[1])
else
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[4]) redis.call('ZADD', KEYS[3], '-' .. ARGV[4], ARGV[1])
end
if ARGV[5] == '0' then redis.call('HDEL', KEYS[2], ARGV[1]) else redis.call('HSET', KEYS[2], ARGV[1], ARGV[5]) end
return 1
