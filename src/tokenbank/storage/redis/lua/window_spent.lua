-- window_spent.lua: what an account's spend window holds now, read in one consistent step.
-- KEYS: 1 the token's "spent" hash (account -> "total:oldest", the running total of the account's spend set and
--       the score of its oldest member), 2 the account's spend set ("tx_id:amount" scored by time, microseconds)
-- ARGV: 1 account id, 2 the window's start (microseconds): spends scored after it count
-- Returns: the window's spent amount, a decimal string of base units (decimal.lua is prepended).
-- The set keeps the spends that left the window until the account's next counted debit removes them, so its
-- total counts them too: the answer is the total less those, or the members inside the window summed, whichever
-- side is smaller; when the oldest spend is still inside, the total itself, without reading the set.
local state = redis.call('HGET', KEYS[1], ARGV[1])
local total, oldest = nil, nil
if state then
    total, oldest = string.match(state, '^(%d+):(%d*)$')
    if not total then total = state end -- a bare total, as stored before the oldest was kept alongside it
end
local start = tonumber(ARGV[2])
if total and oldest and oldest ~= '' and tonumber(oldest) > start then return total end
local left = redis.call('ZCOUNT', KEYS[2], '-inf', ARGV[2])
if left == 0 then return total or '0' end
local function amounts(members)
    local sum = '0'
    for _, member in ipairs(members) do sum = add(sum, string.match(member, ':(%d+)$')) end
    return sum
end
if total and left <= redis.call('ZCARD', KEYS[2]) - left then
    return sub(total, amounts(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])))
end
return amounts(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[2], '+inf'))
