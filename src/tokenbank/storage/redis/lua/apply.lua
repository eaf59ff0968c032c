-- apply.lua: apply a list of ledger ops in one atomic script call (status.lua, decimal.lua, lib.lua, ops.lua
-- prepended).
-- KEYS: the 19 token keys listed in lib.lua
-- ARGV: 1-3 as in lib.lua; 4 atomic ("1"/"0"); 5 ops as a JSON array (see ops.lua)
-- Returns: a JSON array, one {"s": status, "t": [transaction...], "h": hold|null} per op
--   (status numbers are tokenbank.status.Status, from status.lua; ST_TOKEN_NOT_INITIALIZED for every
--   op if the token does not exist)
local ops = cjson.decode(ARGV[5])
if redis.call('EXISTS', K_TOKEN) == 0 then
    local out = {}
    for i = 1, #ops do out[i] = '{"s":' .. ST_TOKEN_NOT_INITIALIZED .. '}' end
    return '[' .. table.concat(out, ',') .. ']'
end
local out, err = apply_all(ops, ARGV[4] == '1', now_us())
if err then return err end
return '[' .. table.concat(out, ',') .. ']'
