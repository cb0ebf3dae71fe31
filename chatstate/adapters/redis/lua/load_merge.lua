-- Loading a snapshot, merging: the new state was built under a temporary prefix; merge it into
-- the live keys in one step (incoming values win; dedupe keys and pending entries appended;
-- lists replaced by key and new outbox entries appended: load_lists.lua).
-- ARGV: live prefix, temporary prefix.
local live, tmp = ARGV[1], ARGV[2]
local sections = {'subs', 'subt', 'dd', 'ddseq', 'ddc', 'ddt', 'ts', 'tt', 'cs', 'ct', 'locks',
                  'qkeys', 'qseq'}

if redis.call('EXISTS', tmp .. 'subs') == 1 then
    redis.call('SUNIONSTORE', live .. 'subs', live .. 'subs', tmp .. 'subs')
end
for _, member in ipairs(redis.call('ZRANGE', tmp .. 'dd', 0, -1)) do
    if not redis.call('ZSCORE', live .. 'dd', member) then
        redis.call('ZADD', live .. 'dd', redis.call('INCR', live .. 'ddseq'), member)
        redis.call('HSET', live .. 'ddt', member, redis.call('HGET', tmp .. 'ddt', member))
        local claim = redis.call('HGET', tmp .. 'ddc', member)
        if claim then redis.call('HSET', live .. 'ddc', member, claim) end
    end
end
for _, name in ipairs({'subt', 'tt', 'ct'}) do
    if redis.call('EXISTS', tmp .. name) == 1 then
        redis.call('ZUNIONSTORE', live .. name, 2, live .. name, tmp .. name, 'AGGREGATE', 'MAX')
    end
end
for _, name in ipairs({'ts', 'cs', 'locks'}) do
    local items = redis.call('HGETALL', tmp .. name)
    for i = 1, #items, 2 do redis.call('HSET', live .. name, items[i], items[i + 1]) end
end
for _, k in ipairs(redis.call('SMEMBERS', tmp .. 'qkeys')) do
    for _, entry in ipairs(redis.call('LRANGE', tmp .. 'q:' .. k, 0, -1)) do
        redis.call('RPUSH', live .. 'q:' .. k, entry)
    end
    redis.call('SADD', live .. 'qkeys', k)
    redis.call('UNLINK', tmp .. 'q:' .. k)
end
for _, name in ipairs(sections) do redis.call('UNLINK', tmp .. name) end
load_lists(live, tmp, now_ms())
load_outbox(live, tmp)
return 1
