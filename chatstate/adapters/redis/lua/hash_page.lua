-- One page of a frozen hash in id order. KEYS: the ids zset, the hash. ARGV: start, stop.
-- Returns {ids, values}.
local ids = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])
if #ids == 0 then return {{}, {}} end
return {ids, redis.call('HMGET', KEYS[2], unpack(ids))}
