-- feed.lua: the ledger feed, read from the token's ledger stream (one entry per transaction, in seq order).
-- KEYS: 1 the ledger stream (TokenKeys.stream), 2 the seq counter (TokenKeys.seq)
-- ARGV: 1 after seq, 2 limit
-- Returns: {0, entries...} with the JSON of up to `limit` transactions with seq > after, in seq order;
--          {1, first seq held} when the stream no longer holds seq after + 1 (the reader is behind what Redis keeps).
-- The stream's ids are times, not seqs, so the first entry past `after` is found by a binary search over the
-- milliseconds of its ids (seqs grow with ids), then read forward.

local stream, after, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current <= after then return { 0 } end

local function seq_of(entry)
    local fields = entry[2]
    for i = 1, #fields, 2 do
        if fields[i] == 'tx' then return tonumber(cjson.decode(fields[i + 1]).seq) end
    end
    return 0
end
local function ms(id) return tonumber(string.match(id, '^(%d+)')) end

local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
if not first then return { 1, 0 } end
local first_seq = seq_of(first)
if first_seq > after + 1 then return { 1, first_seq } end

local start
if first_seq > after then
    start = '-'
else
    local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
    -- smallest millisecond m whose first entry at or after m has seq > after (hi + 1 if none)
    local lo, hi = ms(first[1]), ms(last[1]) + 1
    while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        local e = redis.call('XRANGE', stream, string.format('%d', mid), '+', 'COUNT', 1)[1]
        if e and seq_of(e) > after then hi = mid else lo = mid + 1 end
    end
    start = string.format('%d', math.max(lo - 1, 0))
end

local out = { 0 }
while #out - 1 < limit do
    local entries = redis.call('XRANGE', stream, start, '+', 'COUNT', 500)
    if #entries == 0 then break end
    for _, e in ipairs(entries) do
        if seq_of(e) > after then
            for i = 1, #e[2], 2 do
                if e[2][i] == 'tx' then out[#out + 1] = e[2][i + 1] end
            end
            if #out - 1 >= limit then break end
        end
    end
    start = '(' .. entries[#entries][1]
end
return out
