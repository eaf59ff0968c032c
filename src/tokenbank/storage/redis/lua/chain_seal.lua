-- chain_seal.lua: append the chain hashes the sealer computed (storage/redis/chain.py), unless another sealer
-- appended since this one read where the hashes end.
-- KEYS: 1 chainhash (list: the hash of each entry of the token's chain list, same position)
-- ARGV: 1 the length of chainhash the hashes were computed after, 2.. the hashes, in order
-- Returns: 1 appended, 0 nothing written (the list moved on)
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return 0 end
for first = 2, #ARGV, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
return 1
