-- rank.lua: the leaderboard position of one account, read in one consistent step.
-- KEYS: 1 leaderboard zset (score = -balance), 2 balances hash
-- ARGV: 1 account id, 2.. excluded account ids
-- Returns: {} if the account is not ranked (no positive balance), else {base, member1, balance1, ...}:
--   the account alone, or (for scores at or beyond 2^53, which are rounded) every member sharing its
--   score; base = the number of non-excluded members ranked before member1. The caller sorts the group by
--   (exact balance desc, id asc).
local lb, bal, user = KEYS[1], KEYS[2], ARGV[1]
local r = redis.call('ZRANK', lb, user)
if not r then return {} end
local score = redis.call('ZSCORE', lb, user)
local start, members = r, { user }
if tonumber(score) <= -9007199254740992 then
    start = redis.call('ZCOUNT', lb, '-inf', '(' .. score)
    members = redis.call('ZRANGE', lb, score, score, 'BYSCORE')
end
local base = start
for i = 2, #ARGV do
    local x = redis.call('ZRANK', lb, ARGV[i])
    if x and x < start then base = base - 1 end
end
local out = { base }
local balances = redis.call('HMGET', bal, unpack(members))
for i, m in ipairs(members) do
    out[#out + 1] = m
    out[#out + 1] = balances[i] or '0'
end
return out
