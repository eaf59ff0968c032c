-- spendable.lua: what some accounts can spend at one moment: each balance less what its credit lots hold locked
-- (pending: available_at after now; expired, not swept: expires_at at or before now), read in the layout of
-- lots.lua (backend.spendable_balances sends it as a plain EVALSHA through the read auto-pipeline: one round trip,
-- shared with concurrent reads). decimal.lua is prepended.
-- KEYS: 1 bal hash, 2 lots hash (lot id -> open lot; its "{tag}:lo:<account>", "{tag}:la:<account>" sets are
--   named from it, as lots.lua does)
-- ARGV: 1 now (us since the epoch), 2.. the account ids
-- Returns: one signed decimal string per account id, in order
local K_BAL, K_LOTS, now = KEYS[1], KEYS[2], ARGV[1]
local tag = string.sub(K_LOTS, 1, -5)
local any = redis.call('EXISTS', K_LOTS) == 1 -- no open lot in the token: nothing is locked

local function locked(user) -- the remaining of the account's pending and expired lots, added up
    if not any then return '0' end
    local ids = redis.call('ZRANGE', tag .. 'lo:' .. user, '-inf', now, 'BYSCORE')
    for _, id in ipairs(redis.call('ZRANGE', tag .. 'la:' .. user, '(' .. now, '+inf', 'BYSCORE')) do
        ids[#ids + 1] = id
    end
    local sum, seen = '0', {}
    for first = 1, #ids, 1000 do -- unpack has a stack limit
        local part = { unpack(ids, first, math.min(first + 999, #ids)) }
        local rows = redis.call('HMGET', K_LOTS, unpack(part))
        for i, id in ipairs(part) do
            if rows[i] and not seen[id] then
                seen[id] = true
                sum = add(sum, cjson.decode(rows[i])[2])
            end
        end
    end
    return sum
end

local out = {}
for i = 2, #ARGV do
    local user = ARGV[i]
    out[#out + 1] = ssub(redis.call('HGET', K_BAL, user) or '0', locked(user))
end
return out
