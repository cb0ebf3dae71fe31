-- Loading a snapshot, replacing: the new state was built under a temporary prefix; switch to
-- it in one step. The keys of one namespace share a hash tag (one cluster slot), so the
-- pending-list keys computed from the qkeys set inside the script stay on one node.
-- The namespace's lists and outbox go first, then the snapshot's are moved in (load_lists.lua;
-- the outbox counter is kept, so that no id names two entries).
-- ARGV: live prefix, temporary prefix.
local live, tmp = ARGV[1], ARGV[2]
local sections = {'subs', 'subt', 'dd', 'ddseq', 'ddc', 'ddt', 'ts', 'tt', 'cs', 'ct', 'locks',
                  'qkeys', 'qseq'}

for _, k in ipairs(redis.call('SMEMBERS', live .. 'qkeys')) do
    redis.call('UNLINK', live .. 'q:' .. k)
end
for _, k in ipairs(redis.call('ZRANGE', live .. 'lkeys', 0, -1)) do
    redis.call('UNLINK', live .. 'l:' .. k)
end
for _, thread in ipairs(redis.call('ZRANGE', live .. 'obh', 0, -1)) do
    redis.call('UNLINK', live .. 'obq:' .. thread)
end
for _, name in ipairs({'lkeys', 'lexp', 'ob', 'obp', 'obk', 'obh'}) do
    redis.call('UNLINK', live .. name)
end
for _, name in ipairs(sections) do
    redis.call('UNLINK', live .. name)
    if redis.call('EXISTS', tmp .. name) == 1 then
        redis.call('RENAME', tmp .. name, live .. name)
        redis.call('PERSIST', live .. name)
    end
end
for _, k in ipairs(redis.call('SMEMBERS', live .. 'qkeys')) do
    redis.call('RENAME', tmp .. 'q:' .. k, live .. 'q:' .. k)
    redis.call('PERSIST', live .. 'q:' .. k)
end
load_lists(live, tmp, now_ms())
load_outbox(live, tmp)
return 1
