-- Loading a snapshot's lists and outbox: they were built under the temporary prefix
-- (``streaming.lists_and_outbox_commands``); both switching scripts move them to the live
-- keys with these functions (a replace removed the live ones first).

-- Each list of the snapshot (``lkeys`` under ``tmp``: every key it names, scored by its
-- expiry) replaces the live list of its key: that one goes; the loaded one (``l:<key>``,
-- absent when it had no items or had expired) takes its place with its expiry, unless it
-- has expired by ``now``. Its exact expiry text (``lexp``) goes with it.
local function load_lists(live, tmp, now)
    local loaded = redis.call('ZRANGE', tmp .. 'lkeys', 0, -1, 'WITHSCORES')
    for i = 1, #loaded, 2 do
        local key, score = loaded[i], loaded[i + 1]
        local source, target = tmp .. 'l:' .. key, live .. 'l:' .. key
        redis.call('UNLINK', target)
        redis.call('ZREM', live .. 'lkeys', key)
        redis.call('HDEL', live .. 'lexp', key)
        local forever = score == 'inf'
        if redis.call('EXISTS', source) == 1 and (forever or tonumber(score) > now) then
            redis.call('RENAME', source, target)
            if forever then
                redis.call('PERSIST', target)
            else
                redis.call('PEXPIREAT', target, score)
                local text = redis.call('HGET', tmp .. 'lexp', key)
                if text then redis.call('HSET', live .. 'lexp', key, text) end
            end
            redis.call('ZADD', live .. 'lkeys', score, key)
        else
            redis.call('UNLINK', source)
        end
    end
    redis.call('UNLINK', tmp .. 'lkeys', tmp .. 'lexp')
end

-- The snapshot's outbox entries (``ob``/``obp`` under ``tmp``, ids 1 .. ``oseq``, in their
-- order) are appended to the live outbox with new ids (the live counter: after every entry
-- there), each unless an entry with its key is there; those not dead join their thread's
-- queue (``obh`` places a thread whose queue was empty by its new head's due time).
local function load_outbox(live, tmp)
    local count = tonumber(redis.call('GET', tmp .. 'oseq') or '0')
    for n = 1, count do
        local record = redis.call('HGET', tmp .. 'ob', n)
        local e = cjson.decode(record)
        if redis.call('HEXISTS', live .. 'obk', e[1]) == 0 then
            local id = tostring(redis.call('INCR', live .. 'oseq'))
            redis.call('HSET', live .. 'ob', id, record)
            redis.call('HSET', live .. 'obp', id, redis.call('HGET', tmp .. 'obp', n))
            redis.call('HSET', live .. 'obk', e[1], id)
            if e[6] ~= 1 and redis.call('RPUSH', live .. 'obq:' .. e[2], id) == 1 then
                redis.call('ZADD', live .. 'obh', e[4], e[2])
            end
        end
    end
    redis.call('UNLINK', tmp .. 'ob', tmp .. 'obp', tmp .. 'oseq')
end
