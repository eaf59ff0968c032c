-- events_record.lua: store one pass over the feed (deliveries, monitor states, monitor events) and move its
-- cursor, atomically. An (endpoint, event) pair or a monitor event id stored before is left as it is.
-- KEYS: 1 deliveries hash, 2 (endpoint, event) -> delivery id hash, 3 monitor states hash,
--       4 monitor events hash, 5 monitor event ids hash, 6 monitor event counter, 7 consumer cursors hash
-- ARGV: 1 the prefix of per-endpoint queue keys (TokenKeys.events_prefix), 2 the pass as JSON:
--       {cursor, upto, deliveries: [{id, endpoint_id, event_id, score, json}], states: [{key, zone}],
--        events: [{event_id, json}]}
-- Returns: 1

local prefix = ARGV[1]
local pass = cjson.decode(ARGV[2])
for _, d in ipairs(pass.deliveries) do
    if redis.call('HSETNX', KEYS[2], d.endpoint_id .. '|' .. d.event_id, d.id) == 1 then
        redis.call('HSET', KEYS[1], d.id, d.json)
        redis.call('ZADD', prefix .. 'dq:' .. d.endpoint_id, d.score, d.id)
        redis.call('ZADD', prefix .. 'dall:' .. d.endpoint_id, d.score, d.id)
    end
end
for _, s in ipairs(pass.states) do redis.call('HSET', KEYS[3], s.key, s.zone) end
for _, e in ipairs(pass.events) do
    if redis.call('HSETNX', KEYS[5], e.event_id, '1') == 1 then
        redis.call('HSET', KEYS[4], redis.call('INCR', KEYS[6]), e.json)
    end
end
local current = redis.call('HGET', KEYS[7], pass.cursor)
if not current or tonumber(current) < tonumber(pass.upto) then
    redis.call('HSET', KEYS[7], pass.cursor, pass.upto)
end
return 1
