-- Loading a snapshot's lists and outbox: they were built under the temporary prefix
-- (``streaming.lists_and_outbox_commands``); both switching scripts move them to the live
-- keys with these functions (a replace removed the live ones first).

-- Each list of the snapshot (``lkeys`` under ``tmp``: every key it names, scored by its
-- expiry) replaces the live list of its key: that one goes; the loaded one (``l:<key>``,
-- absent when it had no items or had expired) takes its place with its expiry, unless it
-- has expired by ``now``. Its exact expiry text (``lexp``) goes with it.
local function load_lists(live, tmp, now)
    local loaded = call('ZRANGE', tmp .. 'lkeys', 0, -1, 'WITHSCORES')
    for i = 1, #loaded, 2 do
        local key, score = loaded[i], loaded[i + 1]
        local source, target = tmp .. 'l:' .. key, live .. 'l:' .. key
        call('UNLINK', target)
        call('ZREM', live .. 'lkeys', key)
        call('HDEL', live .. 'lexp', key)
        local forever = score == 'inf'
        if call('EXISTS', source) == 1 and (forever or tonumber(score) > now) then
            call('RENAME', source, target)
            if forever then
                call('PERSIST', target)
            else
                call('PEXPIREAT', target, score)
                local text = call('HGET', tmp .. 'lexp', key)
                if text then call('HSET', live .. 'lexp', key, text) end
            end
            call('ZADD', live .. 'lkeys', score, key)
        else
            call('UNLINK', source)
        end
    end
    call('UNLINK', tmp .. 'lkeys', tmp .. 'lexp')
end

-- The snapshot's outbox entries (``ob``/``obp`` under ``tmp``, ids 1 .. ``oseq``, in their
-- order) are appended to the live outbox with new ids (the live counter: after every entry
-- there), each unless an entry with its key is there; those not dead join their thread's
-- queue (``obh`` places a thread whose queue was empty by its new head's due time).
local function load_outbox(live, tmp)
    local count = tonumber(call('GET', tmp .. 'oseq') or '0')
    for n = 1, count do
        local record = call('HGET', tmp .. 'ob', n)
        local e = decode(record)
        if call('HEXISTS', live .. 'obk', e[1]) == 0 then
            local id = tostring(call('INCR', live .. 'oseq'))
            call('HSET', live .. 'ob', id, record)
            call('HSET', live .. 'obp', id, call('HGET', tmp .. 'obp', n))
            call('HSET', live .. 'obk', e[1], id)
            if e[6] ~= 1 and call('RPUSH', live .. 'obq:' .. e[2], id) == 1 then
                call('ZADD', live .. 'obh', e[4], e[2])
            end
        end
    end
    call('UNLINK', tmp .. 'ob', tmp .. 'obp', tmp .. 'oseq')
end
