-- The outbox. ``ob``: id -> the entry's record, JSON [key, thread, created_ms, due_ms,
-- attempts, dead (0|1), lease owner ('' none), lease_until_ms]; ``obp``: id -> payload (JSON
-- text, never decoded here); ``obk``: idempotency key -> id; ``oseq``: the id counter (ids
-- grow in commit order). ``obq:<thread>``: the ids of the thread's entries not dead, oldest
-- first -- a run from its head is what a claim takes. ``obh``: thread -> when its head can
-- next be claimed (its due time, or the end of its lease); a thread is in it exactly when its
-- queue is not empty. Every KEYS list of an outbox step starts ob, obp, obk, oseq, obh.

-- Store a new entry for ``thread`` unless an entry with ``key`` is waiting.
local function ob_enqueue(o, queue, key, thread, payload, now)
    if call('HEXISTS', o[3], key) == 1 then return end
    local id = tostring(call('INCR', o[4]))
    call('HSET', o[1], id, encode({key, thread, now, now, 0, 0, '', 0}))
    call('HSET', o[2], id, payload)
    call('HSET', o[3], key, id)
    if call('RPUSH', queue, id) == 1 then call('ZADD', o[5], now, thread) end
end

-- The record of entry ``id`` (nil when there is none).
local function ob_entry(o, id)
    local raw = call('HGET', o[1], id)
    return raw and decode(raw)
end

-- The thread's place in ``obh``, after a change of its queue or its head.
local function ob_rescore(o, queue, thread, now)
    local head = call('LINDEX', queue, 0)
    if not head then
        call('ZREM', o[5], thread)
        return
    end
    local e = ob_entry(o, head)
    local at = e[4]
    if e[7] ~= '' and e[8] > now then at = e[8] end
    call('ZADD', o[5], at, thread)
end

-- Remove entry ``id`` (record ``e``) from every key (its thread's place is the caller's).
local function ob_remove(o, queue, id, e)
    call('HDEL', o[1], id)
    call('HDEL', o[2], id)
    if call('HGET', o[3], e[1]) == id then call('HDEL', o[3], e[1]) end
    call('LREM', queue, 1, id)
end
