-- spend_layout.lua: move a token's spend windows from the layout of earlier builds (per account a sorted set of
-- "tx_id:amount" scored by time, and a hash of "total:oldest" or a bare total) to the list layout of ops.lua, in
-- one atomic step. A window some process has already started in the list layout is merged, in time order.
-- KEYS: 1 the old state hash ("{tag}:spent"), 2 the window hash ("{tag}:window")
-- ARGV: 1 the old sets' key prefix ("{tag}:sp:"), 2 the lists' key prefix ("{tag}:sw:")
-- Returns the number of accounts moved (decimal.lua is prepended).
local moved = 0
for _, user in ipairs(redis.call('HKEYS', KEYS[1])) do
    local old, list = ARGV[1] .. user, ARGV[2] .. user
    local entries = {}
    local scored = redis.call('ZRANGE', old, 0, -1, 'WITHSCORES')
    for i = 1, #scored, 2 do
        local amount = string.match(scored[i], ':(%d+)$')
        entries[#entries + 1] = string.format('%.0f', tonumber(scored[i + 1])) .. ':' .. amount
    end
    for _, entry in ipairs(redis.call('LRANGE', list, 0, -1)) do entries[#entries + 1] = entry end
    local function time_of(entry) return tonumber(string.match(entry, '^(%d+):')) end
    table.sort(entries, function(a, b) return time_of(a) < time_of(b) end)
    redis.call('DEL', old, list)
    local total = '0'
    for first = 1, #entries, 1000 do
        local part = { unpack(entries, first, math.min(first + 999, #entries)) }
        for _, entry in ipairs(part) do total = add(total, string.match(entry, ':(%d+)$')) end
        redis.call('RPUSH', list, unpack(part))
    end
    if #entries > 0 then
        local oldest, newest = string.match(entries[1], '^(%d+):'), string.match(entries[#entries], '^(%d+):')
        redis.call('HSET', KEYS[2], user, total .. ':' .. oldest .. ':' .. newest)
    else
        redis.call('HDEL', KEYS[2], user)
    end
    moved = moved + 1
end
redis.call('DEL', KEYS[1])
return moved
