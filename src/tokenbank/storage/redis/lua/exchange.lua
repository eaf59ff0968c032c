-- exchange.lua: one op on each of two tokens of one ledger group, all or nothing (scripts.py prepends
-- status.lua and defines token_ledger(KEYS, ARGV): status.lua, lib.lua, ops.lua and ledger_api.lua, once per
-- token, so each token's op runs with exactly the code and rules of apply.lua).
-- KEYS: 1-16 the first token's keys, 17-32 the second token's (each in lib.lua's order; one hash tag, the
--   ledger group's, so one cluster slot)
-- ARGV: 1-3 the first token's common arguments (lib.lua), 4-6 the second token's, 7 the first token's op,
--   8 the second token's op (each a JSON array holding one op as in ops.lua)
-- Returns: a JSON array of two op results ({"s": status, "t": [...], "h": null}); when either op is refused
--   neither is applied: the refused one reports its status, the other ST_BATCH_ABORTED
--   (ST_TOKEN_NOT_INITIALIZED for a token that does not exist).
local first = token_ledger({ unpack(KEYS, 1, 16) }, { ARGV[1], ARGV[2], ARGV[3] })
local second = token_ledger({ unpack(KEYS, 17, 32) }, { ARGV[4], ARGV[5], ARGV[6] })
local ledgers, ops = { first, second }, { cjson.decode(ARGV[7])[1], cjson.decode(ARGV[8])[1] }
local function refused(i, js)
    local out = { '{"s":' .. ST_BATCH_ABORTED .. '}', '{"s":' .. ST_BATCH_ABORTED .. '}' }
    out[i] = js
    return '[' .. table.concat(out, ',') .. ']'
end
for i = 1, 2 do
    local problem = ledgers[i].malformed(ops[i])
    if problem then return redis.error_reply('tokenbank: op ' .. i .. ': ' .. problem) end
    if not ledgers[i].exists() then return refused(i, '{"s":' .. ST_TOKEN_NOT_INITIALIZED .. '}') end
end
local now, out = first.now(), {}
for i = 1, 2 do
    ledgers[i].begin()
    local status, js = ledgers[i].apply_one(ops[i], now)
    if status ~= ST_OK and status ~= ST_REPLAYED then
        for j = i, 1, -1 do ledgers[j].rollback() end
        return refused(i, js or ('{"s":' .. status .. '}'))
    end
    out[i] = js
end
first.commit()
second.commit()
return '[' .. table.concat(out, ',') .. ']'
