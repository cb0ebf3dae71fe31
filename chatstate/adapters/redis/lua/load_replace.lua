-- Loading a snapshot, replacing: the new state was built under a temporary prefix; switch to
-- it in one step. The keys of one namespace share a hash tag (one cluster slot), so the
-- pending-list keys computed from the qkeys set inside the script stay on one node.
-- The namespace's lists and outbox go first, then the snapshot's are moved in (load_lists.lua;
-- the outbox counter is kept, so that no id names two entries).
-- ARGV: live prefix, temporary prefix.
local live, tmp = ARGV[1], ARGV[2]
local sections = {'subs', 'subt', 'dd', 'ddseq', 'ddc', 'ddt', 'ts', 'tt', 'cs', 'ct', 'locks',
                  'qkeys', 'qseq'}

for _, k in ipairs(call('SMEMBERS', live .. 'qkeys')) do
    call('UNLINK', live .. 'q:' .. k)
end
for _, k in ipairs(call('ZRANGE', live .. 'lkeys', 0, -1)) do
    call('UNLINK', live .. 'l:' .. k)
end
for _, thread in ipairs(call('ZRANGE', live .. 'obh', 0, -1)) do
    call('UNLINK', live .. 'obq:' .. thread)
end
for _, name in ipairs({'lkeys', 'lexp', 'ob', 'obp', 'obk', 'obh'}) do
    call('UNLINK', live .. name)
end
for _, name in ipairs(sections) do
    call('UNLINK', live .. name)
    if call('EXISTS', tmp .. name) == 1 then
        call('RENAME', tmp .. name, live .. name)
        call('PERSIST', live .. name)
    end
end
for _, k in ipairs(call('SMEMBERS', live .. 'qkeys')) do
    call('RENAME', tmp .. 'q:' .. k, live .. 'q:' .. k)
    call('PERSIST', live .. 'q:' .. k)
end
load_lists(live, tmp, now_ms())
load_outbox(live, tmp)
return 1
