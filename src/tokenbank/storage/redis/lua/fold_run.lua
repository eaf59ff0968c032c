-- fold_run.lua: fold up to ARGV[1] pending leaderboard changes now (fold.lua is prepended).
-- KEYS: 1 pending list (lbq), 2 balances hash, 3 leaderboard zset. ARGV: 1 how many entries at most.
-- Returns: the number of pending entries folded (0 when nothing was pending).
return fold_pending(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]))
