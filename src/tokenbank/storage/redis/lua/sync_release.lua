-- sync_release.lua: give the sync worker's lease back, if this worker still holds it.
-- KEYS: 1 the lease key (TokenKeys.sync_lease)
-- ARGV: 1 the worker's consumer name
-- Returns: 1 if the lease was released, 0 if another worker (or nobody) held it.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0
