"""The Redis store: every write is one Lua script call; see ``docs/redis.md`` for the key layout."""
