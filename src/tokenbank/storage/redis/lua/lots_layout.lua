-- lots_layout.lua: move a token's credit lots from the layout of earlier builds (the lots hash keyed by account,
-- each field a JSON array of its open lots in spend order, each lot [id, remaining, amount, expires_at,
-- available_at, category, created_at]) to the layout of lots.lua (the hash keyed by lot id, the account id appended
-- to each lot, and per account its spend-order and availability sets), in one atomic step. Fields already in the
-- new layout (a lot: an array of strings) are left as they are; the expiry index and the used-up lots keep their
-- layout. Old fields are told by their value: an array of arrays, or an empty array.
-- KEYS: 1 the lots hash
-- ARGV: 1 the spend-order sets' key prefix ("{tag}:lo:"), 2 the availability sets' key prefix ("{tag}:la:")
-- Returns the number of accounts moved.
local old = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
    local value = all[i + 1]
    if string.sub(value, 1, 2) == '[[' or string.match(value, '^%[%s*%]$') then
        old[#old + 1] = { all[i], cjson.decode(value) }
    end
end
for _, entry in ipairs(old) do redis.call('HDEL', KEYS[1], entry[1]) end -- first: a lot id may equal an account id
for _, entry in ipairs(old) do
    local user = entry[1]
    for _, lot in ipairs(entry[2]) do
        local id, expires_at, available_at = lot[1], lot[4], lot[5]
        lot[8] = user
        redis.call('HSET', KEYS[1], id, cjson.encode(lot))
        redis.call('ZADD', ARGV[1] .. user, expires_at ~= cjson.null and expires_at or 'inf', id)
        if available_at ~= cjson.null then redis.call('ZADD', ARGV[2] .. user, available_at, id) end
    end
end
return #old
