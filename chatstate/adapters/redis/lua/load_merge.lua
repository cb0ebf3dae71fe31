-- Loading a snapshot, merging: the new state was built under a temporary prefix; merge it into
-- the live keys in one step (incoming values win; dedupe keys and pending entries appended;
-- lists replaced by key and new outbox entries appended: load_lists.lua).
-- ARGV: live prefix, temporary prefix.
local live, tmp = ARGV[1], ARGV[2]
local sections = {'subs', 'subt', 'dd', 'ddseq', 'ddc', 'ddt', 'ts', 'tt', 'cs', 'ct', 'locks',
                  'qkeys', 'qseq'}

if call('EXISTS', tmp .. 'subs') == 1 then
    call('SUNIONSTORE', live .. 'subs', live .. 'subs', tmp .. 'subs')
end
for _, member in ipairs(call('ZRANGE', tmp .. 'dd', 0, -1)) do
    if not call('ZSCORE', live .. 'dd', member) then
        call('ZADD', live .. 'dd', call('INCR', live .. 'ddseq'), member)
        call('HSET', live .. 'ddt', member, call('HGET', tmp .. 'ddt', member))
        local claim = call('HGET', tmp .. 'ddc', member)
        if claim then call('HSET', live .. 'ddc', member, claim) end
    end
end
for _, name in ipairs({'subt', 'tt', 'ct'}) do
    if call('EXISTS', tmp .. name) == 1 then
        call('ZUNIONSTORE', live .. name, 2, live .. name, tmp .. name, 'AGGREGATE', 'MAX')
    end
end
for _, name in ipairs({'ts', 'cs', 'locks'}) do
    local items = call('HGETALL', tmp .. name)
    for i = 1, #items, 2 do call('HSET', live .. name, items[i], items[i + 1]) end
end
for _, k in ipairs(call('SMEMBERS', tmp .. 'qkeys')) do
    for _, entry in ipairs(call('LRANGE', tmp .. 'q:' .. k, 0, -1)) do
        call('RPUSH', live .. 'q:' .. k, entry)
    end
    call('SADD', live .. 'qkeys', k)
    call('UNLINK', tmp .. 'q:' .. k)
end
for _, name in ipairs(sections) do call('UNLINK', tmp .. name) end
load_lists(live, tmp, now_ms())
load_outbox(live, tmp)
return 1
