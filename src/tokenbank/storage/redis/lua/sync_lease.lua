-- sync_lease.lua: take or renew the sync worker's lease on a token (one active worker per token).
-- KEYS: 1 the lease key (TokenKeys.sync_lease)
-- ARGV: 1 the worker's consumer name, 2 the lease duration (milliseconds)
-- Returns: 1 if this worker holds the lease now (taken or renewed), 0 if another worker holds it.
local v = redis.call('GET', KEYS[1])
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
