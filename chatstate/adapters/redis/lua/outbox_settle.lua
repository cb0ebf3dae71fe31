-- KEYS: ob, obp, obk, oseq, obh. ARGV: action, the namespace's prefix, owner, delay_ms,
-- max_attempts, then entry ids. Actions:
-- 'delivered': remove the entry (whoever leases it); returns 1 when it was there.
-- 'failed': if ``owner`` leases it: attempts + 1, due ``delay_ms`` from now, lease ended,
--   dead once attempts reach ``max_attempts`` (it leaves its thread's queue); returns
--   1 when dead now, else 0.
-- 'release': end ``owner``'s leases of the entries; returns 0.
-- 'requeue': dead entries become due now with no attempts, back in their thread's queue
--   in commit order; returns how many.
-- 'discard': remove the entries; returns how many.
local o = KEYS
local action, prefix, owner = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local count, threads = 0, {}
for a = 6, #ARGV do
    local id = ARGV[a]
    local e = ob_entry(o, id)
    if e then
        local queue = prefix .. 'obq:' .. e[2]
        if action == 'delivered' or action == 'discard' then
            ob_remove(o, queue, id, e)
            count = count + 1
            threads[e[2]] = queue
        elseif action == 'failed' then
            if e[7] == owner then
                e[5] = e[5] + 1
                e[4] = now + tonumber(ARGV[4])
                e[7], e[8] = '', 0
                if e[5] >= tonumber(ARGV[5]) then
                    e[6] = 1
                    call('LREM', queue, 1, id)
                    count = 1
                end
                call('HSET', o[1], id, encode(e))
                threads[e[2]] = queue
            end
        elseif action == 'release' then
            if e[7] == owner then
                e[7], e[8] = '', 0
                call('HSET', o[1], id, encode(e))
                threads[e[2]] = queue
            end
        elseif action == 'requeue' and e[6] == 1 then
            e[4], e[5], e[6] = now, 0, 0
            call('HSET', o[1], id, encode(e))
            local pivot, n = nil, tonumber(id)
            for _, other in ipairs(call('LRANGE', queue, 0, -1)) do
                if tonumber(other) > n then
                    pivot = other
                    break
                end
            end
            if pivot then
                call('LINSERT', queue, 'BEFORE', pivot, id)
            else
                call('RPUSH', queue, id)
            end
            count = count + 1
            threads[e[2]] = queue
        end
    end
end
for thread, queue in pairs(threads) do ob_rescore(o, queue, thread, now) end
return count
