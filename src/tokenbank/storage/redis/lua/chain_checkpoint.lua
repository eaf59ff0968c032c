-- chain_checkpoint.lua: store a signed checkpoint if it follows the last stored one.
-- KEYS: 1 checkpoints (list of checkpoint JSON objects, in seq order)
-- ARGV: 1 previous_seq of the new checkpoint (0: the first), 2 its JSON
-- Returns: 1 stored, 0 nothing written (another checkpoint was stored since previous_seq was read)
local last = redis.call('LINDEX', KEYS[1], -1)
local prev = '0'
if last then prev = string.format('%.0f', cjson.decode(last).seq) end
if prev ~= ARGV[1] then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[2])
return 1
