-- exchange.lua: exchanges between two tokens of one ledger group, each one op on each token, all or nothing
-- (scripts.py prepends status.lua and defines token_ledger(KEYS, ARGV): status.lua, decimal.lua, lib.lua, ops.lua and
-- ledger_api.lua, once per token, so each token's op runs with exactly the code and rules of apply.lua).
-- KEYS: 1-19 the first token's keys, 20-38 the second token's (each in lib.lua's order; one hash tag, the
--   ledger group's, so one cluster slot)
-- ARGV: 1-3 the first token's common arguments (lib.lua), 4-6 the second token's, 7 the first token's ops,
--   8 the second token's ops (JSON arrays of ops as in ops.lua, of one length: exchange i is op i of each)
-- Returns: a JSON array with one [result, result] per exchange ({"s": status, "t": [...], "h": null}), in
--   order, each exchange applied or not as if alone: when either op is refused neither is applied, the
--   refused one reports its status and the other ST_BATCH_ABORTED (ST_TOKEN_NOT_INITIALIZED for a token that
--   does not exist).
local PER_TOKEN = #KEYS / 2 -- lib.lua's token keys
local first = token_ledger({ unpack(KEYS, 1, PER_TOKEN) }, { ARGV[1], ARGV[2], ARGV[3] })
local second = token_ledger({ unpack(KEYS, PER_TOKEN + 1, #KEYS) }, { ARGV[4], ARGV[5], ARGV[6] })
local ledgers, ops = { first, second }, { cjson.decode(ARGV[7]), cjson.decode(ARGV[8]) }
if #ops[1] ~= #ops[2] then return redis.error_reply('tokenbank: the two lists of ops differ in length') end
local function pair(results, refused, js)
    results[refused] = js
    results[3 - refused] = '{"s":' .. ST_BATCH_ABORTED .. '}'
    return results
end
local missing = nil
for j = 1, 2 do
    for i, op in ipairs(ops[j]) do
        local problem = ledgers[j].malformed(op)
        if problem then return redis.error_reply('tokenbank: token ' .. j .. ' op ' .. i .. ': ' .. problem) end
    end
    if not missing and not ledgers[j].exists() then missing = j end
end
local now, out = first.now(), {}
for i = 1, #ops[1] do
    local results, refused = {}, false
    if missing then
        pair(results, missing, '{"s":' .. ST_TOKEN_NOT_INITIALIZED .. '}')
        refused = true
    end
    for j = 1, 2 do
        if refused then break end
        ledgers[j].begin()
        local status, js = ledgers[j].apply_one(ops[j][i], now)
        if status ~= ST_OK and status ~= ST_REPLAYED then
            for k = j, 1, -1 do ledgers[k].rollback() end
            pair(results, j, js or ('{"s":' .. status .. '}'))
            refused = true
        else
            results[j] = js
        end
    end
    if not refused then
        -- Both applied: their deferred effects now, so the next exchange sees them, and its refusal (which
        -- clears what is pending) cannot take them back.
        first.commit()
        second.commit()
    end
    out[i] = '[' .. results[1] .. ',' .. results[2] .. ']'
end
return '[' .. table.concat(out, ',') .. ']'
