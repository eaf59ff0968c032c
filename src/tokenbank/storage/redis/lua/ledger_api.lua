-- ledger_api.lua: the end of one token's ledger instance inside a multi-token script (scripts.py wraps
-- status.lua, decimal.lua, lib.lua, ops.lua and this file in `local function token_ledger(KEYS, ARGV) ... end`, so each
-- call makes a ledger with its own key names and its own undo log and deferred effects).
-- Returns the functions a multi-token script drives; nothing here changes how lib.lua or ops.lua work.
return {
    now = now_us,
    exists = function() return redis.call('EXISTS', K_TOKEN) == 1 end,
    malformed = malformed,
    begin = function() undo = {} end,             -- record every change, so rollback() can undo it
    apply_one = apply_one,
    rollback = function() rollback(); undo = nil end,
    commit = function() undo = nil; commit() end, -- the deferred effects: seq, leaderboard, history, stream...
}
