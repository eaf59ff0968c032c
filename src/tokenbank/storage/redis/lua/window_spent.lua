-- window_spent.lua: what an account's spend window holds now, read in one consistent step.
-- KEYS: 1 the token's window hash (account -> "total:oldest:newest", the running total of the account's spend
--       list and the times of its first and last entries), 2 the account's spend list ("time:amount", the time in
--       microseconds, in time order)
-- ARGV: 1 account id, 2 the window's start (microseconds): spends after it count
-- Returns: the window's spent amount, a decimal string of base units (decimal.lua is prepended).
-- The list keeps the spends that left the window until the account's next counted debit removes them, so its
-- total counts them too: the answer is the total less those at the head of the list that are older than the
-- start; when the oldest spend is still inside, the total itself, without reading the list.
local state = redis.call('HGET', KEYS[1], ARGV[1])
if not state then return '0' end
local total, oldest = string.match(state, '^(%d+):(%d*):')
local start = tonumber(ARGV[2])
if oldest == '' or tonumber(oldest) > start then return total end
local left, from = '0', 0
while true do
    local chunk = redis.call('LRANGE', KEYS[2], from, from + 99)
    for _, entry in ipairs(chunk) do
        local at, amount = string.match(entry, '^(%d+):(%d+)$')
        if tonumber(at) > start then return sub(total, left) end
        left = add(left, amount)
    end
    if #chunk < 100 then return sub(total, left) end
    from = from + 100
end
