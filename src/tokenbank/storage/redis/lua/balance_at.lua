-- balance_at.lua: the account's balance right after its last transaction at or before a moment.
-- KEYS: 1 the account's history zset, 2 transactions hash, 3 trimmed-history marker hash
-- ARGV: 1 account id, 2 the moment (microseconds since the epoch)
-- Returns: {"ok", balance} when found or when the account never had an earlier transaction;
--   {"trimmed"} when the answer lies in history older than the retained entries (not answerable).
-- Walks the retained history newest first (seq order, like the SQL stores), decoding each entry.
local hkey, txs, user, at = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
local skip, chunk = 0, 200
while true do
    local ids = redis.call('ZREVRANGE', hkey, skip, skip + chunk - 1)
    if #ids == 0 then break end
    local rows = redis.call('HMGET', txs, unpack(ids))
    for _, js in ipairs(rows) do
        if js then
            local t = cjson.decode(js)
            if tonumber(t.created_at) <= at then
                if t.from_user_id == user then return { 'ok', t.from_balance_after or '0' } end
                return { 'ok', t.to_balance_after or '0' }
            end
        end
    end
    skip = skip + #ids
end
if redis.call('HEXISTS', KEYS[3], user) == 1 then return { 'trimmed' } end
return { 'ok', '0' }
