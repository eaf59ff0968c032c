-- history.lua: one account's transactions, newest first, filtered and paged by seq (keyset).
-- KEYS: 1 the account's history zset (score = seq, member = transaction id), 2 transactions hash
-- ARGV: 1 upper bound for ZREVRANGEBYSCORE ("+inf" or "(<before_seq>"), 2 limit, 3 since (microseconds,
--   inclusive, "" = none), 4 until (microseconds, exclusive, "" = none), 5 types separated by "," ("" = all)
-- Returns: up to limit transaction JSON texts. With filters, at most the retained history is scanned.
local hkey, txs = KEYS[1], KEYS[2]
local max, limit = ARGV[1], tonumber(ARGV[2])
local since, untl = tonumber(ARGV[3]), tonumber(ARGV[4])
local types = nil
if ARGV[5] ~= '' then
    types = {}
    for t in string.gmatch(ARGV[5], '[^,]+') do types[t] = true end
end
local filtered = since or untl or types
local out, skip = {}, 0
local chunk = filtered and math.max(limit, 200) or limit
while #out < limit do
    local ids = redis.call('ZREVRANGEBYSCORE', hkey, max, '-inf', 'LIMIT', skip, chunk)
    if #ids == 0 then break end
    local rows = redis.call('HMGET', txs, unpack(ids))
    for _, js in ipairs(rows) do
        if js then
            local keep = true
            if filtered then
                local t = cjson.decode(js)
                local ts = tonumber(t.created_at)
                keep = (not since or ts >= since) and (not untl or ts < untl) and (not types or types[t.type])
            end
            if keep then
                out[#out + 1] = js
                if #out == limit then break end
            end
        end
    end
    skip = skip + #ids
    if #ids < chunk then break end
end
return out
