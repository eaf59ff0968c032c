-- fold.lua: folding pending leaderboard changes into the leaderboard sorted set. Prepended to the write
-- scripts and to top_holders.lua / rank.lua; run alone as the `fold` script (below the function).
--
-- The write scripts do not touch the leaderboard: each call appends the accounts whose balance it changed
-- to the pending list (RPUSH, one call per script), and folds the list once it holds FOLD_AT entries. A
-- fold pops the list, drops repeats (a hot account is scored once however often it changed), reads the
-- exact current balances with one HMGET per chunk and writes them with one variadic ZADD (and ZREM for
-- emptied accounts), sorted by score so that consecutive skiplist inserts touch neighbouring nodes. The
-- leaderboard readers fold everything pending before they read, in the same script, so a reader always
-- sees every committed write. Scores are taken from the balance hash at fold time, so folding the same
-- account twice, or late, always converges on its current balance.
local FOLD_AT = 1024   -- pending entries that make a write script fold
local FOLD_CHUNK = 1000 -- accounts per HMGET / ZADD (below Lua's unpack limit)

local function fold_pending(k_lbq, k_bal, k_lb, count)
    if count <= 0 then return 0 end
    local users = redis.call('LPOP', k_lbq, count)
    if not users then return 0 end
    local seen, uniq = {}, {}
    for _, u in ipairs(users) do
        if not seen[u] then
            seen[u] = true
            uniq[#uniq + 1] = u
        end
    end
    for first = 1, #uniq, FOLD_CHUNK do
        local part = { unpack(uniq, first, math.min(first + FOLD_CHUNK - 1, #uniq)) }
        local balances = redis.call('HMGET', k_bal, unpack(part))
        local ranked, gone = {}, {}
        for i, u in ipairs(part) do
            local b = balances[i]
            if b and b ~= '0' then ranked[#ranked + 1] = { tonumber(b), b, u } else gone[#gone + 1] = u end
        end
        -- in leaderboard order (balance desc, then id), so consecutive inserts walk neighbouring skiplist
        -- nodes; doubles are fine for this ordering, the stored score is the exact negated decimal string
        table.sort(ranked, function(x, y)
            if x[1] ~= y[1] then return x[1] > y[1] end
            return x[3] < y[3]
        end)
        local args = {}
        for _, r in ipairs(ranked) do
            args[#args + 1] = '-' .. r[2] -- negated: ZRANGE gives balance desc, ties by id asc
            args[#args + 1] = r[3]
        end
        if #args > 0 then redis.call('ZADD', k_lb, unpack(args)) end
        if #gone > 0 then redis.call('ZREM', k_lb, unpack(gone)) end
    end
    return #users
end

local function fold_all(k_lbq, k_bal, k_lb)
    return fold_pending(k_lbq, k_bal, k_lb, redis.call('LLEN', k_lbq))
end
