-- Snapshots are read from a frozen copy, taken in one step (``COPY`` of each key, about half
-- a second per million dedupe keys) so the sections describe one state. Sorted views of the
-- copy are then built chunk by chunk (``SORT_CHUNK``, a few milliseconds each, so Redis
-- serves others in between): sorted sets whose scores are all equal list their members in
-- byte order, which for UTF-8 is code-point order, the order of the snapshot's JSON form.
-- ARGV: live prefix, snapshot prefix, ttl_ms (the copy expires if the reader dies).
-- A released claim (a refused message's, thread '') leaves the copy with its member: a
-- restored namespace handles that message's redelivery too.
-- Lists: those not expired now, with their place in ``lkeys`` (the expiry) and ``lexp``; the
-- outbox: ``ob`` and ``obp`` (every entry, dead ones too).
-- Returns the counts {subscriptions, dedupe, thread_state, channel_state, locks, pending,
-- claims, lists, outbox}.
local live, snap, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local function copy(name)
    if call('COPY', live .. name, snap .. name) == 1 then
        call('PEXPIRE', snap .. name, ttl)
        return true
    end
    return false
end
for _, name in ipairs({'subs', 'dd', 'ddc', 'ts', 'cs', 'locks', 'qkeys', 'lexp', 'ob', 'obp'}) do
    copy(name)
end
for _, k in ipairs(call('SMEMBERS', live .. 'qkeys')) do copy('q:' .. k) end
local lists = call('ZRANGEBYSCORE', live .. 'lkeys', '(' .. now_ms(), '+inf', 'WITHSCORES')
for i = 1, #lists, 2 do
    if copy('l:' .. lists[i]) then call('ZADD', snap .. 'lkeys', lists[i + 1], lists[i]) end
end
call('PEXPIRE', snap .. 'lkeys', ttl)
local claims = call('HGETALL', snap .. 'ddc')
for i = 1, #claims, 2 do
    if decode(claims[i + 1])[2] == '' then
        call('ZREM', snap .. 'dd', claims[i])
        call('HDEL', snap .. 'ddc', claims[i])
    end
end
return {call('SCARD', snap .. 'subs'), call('ZCARD', snap .. 'dd'),
        call('HLEN', snap .. 'ts'), call('HLEN', snap .. 'cs'),
        call('HLEN', snap .. 'locks'), call('SCARD', snap .. 'qkeys'),
        call('HLEN', snap .. 'ddc'), call('ZCARD', snap .. 'lkeys'),
        call('HLEN', snap .. 'ob')}
