-- top_holders.lua: a window of the leaderboard, read in one consistent step.
-- KEYS: 1 leaderboard zset (score = -balance, so ZRANGE is balance desc, ties by account id asc), 2 balances hash
-- ARGV: 1 offset, 2 limit, 3.. excluded account ids
-- Returns: {base, member1, balance1, member2, balance2, ...}: members in leaderboard order around the window
--   (at least offset+limit non-excluded ones if they exist), with exact balances; base = the number of
--   non-excluded members ranked before member1. Scores at or beyond 2^53 are rounded doubles, so where the
--   window's edge falls inside a group of equal rounded scores the whole group is returned and the caller
--   sorts by (exact balance desc, id asc).
local lb, bal = KEYS[1], KEYS[2]
local offset, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local ranks = {}
for i = 3, #ARGV do
    local r = redis.call('ZRANK', lb, ARGV[i])
    if r then ranks[#ranks + 1] = r end
end
table.sort(ranks)
local start = offset
for _, r in ipairs(ranks) do if r <= start then start = start + 1 end end
local stop = start + limit - 1 + #ranks
local first = redis.call('ZRANGE', lb, start, start, 'WITHSCORES')
if #first == 0 then return { 0 } end
local EXACT = -9007199254740992 -- scores at or below -2^53 may be shared by different balances
if tonumber(first[2]) <= EXACT then start = redis.call('ZCOUNT', lb, '-inf', '(' .. first[2]) end
local last = redis.call('ZRANGE', lb, stop, stop, 'WITHSCORES')
if #last > 0 and tonumber(last[2]) <= EXACT then stop = redis.call('ZCOUNT', lb, '-inf', last[2]) - 1 end
local members = redis.call('ZRANGE', lb, start, stop)
local base = start
for _, r in ipairs(ranks) do if r < start then base = base - 1 end end
local out = { base }
local balances = redis.call('HMGET', bal, unpack(members))
for i, m in ipairs(members) do
    out[#out + 1] = m
    out[#out + 1] = balances[i] or '0'
end
return out
