-- Shared by every script: composed before each one's body. Records are described in
-- scripts.py; times are Redis's clock in milliseconds.
if redis.replicate_commands then redis.replicate_commands() end

-- The globals every script calls most, as locals: a local is read without a table lookup
-- (two for ``redis.call``), and a cycle makes about a hundred such calls.
local call, encode, decode, tonumber = redis.call, cjson.encode, cjson.decode, tonumber

local function now_ms()
    local t = call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- ``now_ms()`` and its decimal text: the text goes into records and commands as it is (a
-- number passed to a command or joined to a string is formatted as a float each time).
local function clock()
    local t = call('TIME')
    local text = t[1] .. string.sub(string.rep('0', 6 - #t[2]) .. t[2], 1, 3)
    return tonumber(text), text
end

-- The record of a claim in progress (see scripts.py), as cjson would write it: joined as
-- text (cjson.encode of a table costs a buffer and a float formatting per number).
local function claim_record(owner, thread, expires_ms)
    return '[' .. encode(owner) .. ',' .. encode(thread) .. ',' .. expires_ms
        .. ',false]'
end

-- The text a record whose first element is ``owner`` starts with, as cjson writes it.
local function owner_head(owner)
    return '[' .. encode(owner) .. ','
end

-- Whether ``rec`` (a record whose first element is an owner) starts with ``head``
-- (``owner_head``), read from its text; nil when only decoding can tell.
local function starts(rec, head)
    return string.sub(rec, 1, #head) == head or nil
end

-- Whether the lock record ``rec`` is the owner's whose ``head`` it is, not held by slots
-- (those have 'concurrent' next), read from its text; nil when only decoding can tell.
local function owns(rec, head)
    if not (rec and starts(rec, head)) then return nil end
    local at = #head + 1
    if string.byte(rec, at) ~= 34 or string.sub(rec, at, at + 11) == '"concurrent"' then
        return nil
    end
    return true
end

-- Whether the lock ``key`` (or one of its slots) is held by ``owner`` with its lease running.
local function holding(locks, key, owner, now)
    local rec = call('HGET', locks, key)
    if not rec then return false end
    local held = decode(rec)
    if held[9] then  -- slots (lua/slots.lua)
        for _, h in ipairs(held[9]) do
            if h[1] == owner then return tonumber(h[2]) > now end
        end
        return false
    end
    return held[1] == owner and tonumber(held[5]) > now
end

-- Whether the claim in progress whose record is ``rec`` is alive: its own lease runs, or its
-- owner holds its thread's lock. The window never trims such a claim.
local function alive(rec, locks, now)
    local c = decode(rec)
    return tonumber(c[3]) > now or holding(locks, c[2], c[1], now)
end

-- Whether ``member``'s claim is in progress and alive.
local function live(ddc, locks, member, now)
    local rec = call('HGET', ddc, member)
    if not rec then return false end
    return alive(rec, locks, now)
end

-- Whether ``member`` (in the window) makes its message a duplicate: its claim is done, or in
-- progress and alive.
local function holds(ddc, locks, member, now)
    return call('HEXISTS', ddc, member) == 0 or live(ddc, locks, member, now)
end

-- Drop the members older than the newest ``limit`` -- never one claimed less than ``min_age``
-- ms ago, nor a claim in progress and alive -- with their claims and times; how many
-- (``dry``: would be).
local function trim(dd, ddc, ddt, locks, limit, min_age, now, dry)
    local n = call('ZCARD', dd) - limit
    if n <= 0 then return 0 end
    if n == 1 and min_age == 0 and not dry then
        -- One in, one out (a full window): pop the oldest, and put it back in its place if
        -- its claim is in progress and alive. Counting the claims in progress first sent a
        -- busy namespace (some claim always in progress) down the path below: three
        -- commands and a table more a claim.
        local oldest = call('ZPOPMIN', dd)
        local rec = call('HGET', ddc, oldest[1])
        if rec and alive(rec, locks, now) then
            call('ZADD', dd, oldest[2], oldest[1])
            return 0
        end
        if rec then call('HDEL', ddc, oldest[1]) end
        call('HDEL', ddt, oldest[1])
        return 1
    end
    if min_age == 0 and call('HLEN', ddc) == 0 then  -- nothing in progress: pop
        if dry then return n end
        local left = n
        while left > 0 do
            local items = left == 1 and call('ZPOPMIN', dd)
                or call('ZPOPMIN', dd, math.min(left, 1000))
            for i = 1, #items, 2 do call('HDEL', ddt, items[i]) end
            left = left - #items / 2
            if #items == 0 then break end
        end
        return n
    end
    local gone = 0
    for _, m in ipairs(call('ZRANGE', dd, 0, n - 1)) do
        if min_age > 0 then
            local born = call('HGET', ddt, m)
            if born and tonumber(born) > now - min_age then break end  -- younger ones follow
        end
        if not live(ddc, locks, m, now) then
            if not dry then
                call('ZREM', dd, m)
                call('HDEL', ddc, m)
                call('HDEL', ddt, m)
            end
            gone = gone + 1
        end
    end
    return gone
end

-- Claim ``member``: 1 when this call now holds it. ``rec`` is the in-progress claim record
-- (false: done at once). A member already held is a duplicate (0); one whose claim is in
-- progress and dead is taken over in its place. A new member is the newest; the window is
-- then trimmed. (A duplicate still advances the counter: scores only need to grow, ranks
-- make the window.) ``now_text``: ``now`` as text, when the caller has it.
local function claim(dd, seq, ddc, ddt, locks, member, limit, min_age, rec, now, now_text)
    local position = string.format('%d', call('INCR', seq))
    if call('ZADD', dd, 'NX', position, member) == 0 then
        if holds(ddc, locks, member, now) then return 0 end
    else
        call('HSET', ddt, member, now_text or now)
        trim(dd, ddc, ddt, locks, limit, min_age, now, false)
    end
    if rec then call('HSET', ddc, member, rec) else call('HDEL', ddc, member) end
    return 1
end

-- Pop up to ``limit`` (nil: all) oldest entries of the pending list ``q``. An empty list
-- costs one read (``qkeys`` holds the keys of lists that are not empty).
local function take_entries(q, qkeys, key, limit)
    local items = call('LRANGE', q, '0', limit and limit - 1 or '-1')
    if #items == 0 then return items end
    if limit then
        call('LTRIM', q, #items, -1)
        if call('LLEN', q) > 0 then return items end
    else
        call('DEL', q)
    end
    call('SREM', qkeys, key)
    return items
end

-- Pop the entries at the front of ``q`` enqueued more than ``ttl`` ms ago (nil: none).
local function expire(q, qkeys, key, ttl, now)
    local gone = {}
    if not ttl then return gone end
    while true do
        local head = call('LINDEX', q, 0)
        if not head or tonumber(decode(head)[4]) >= now - ttl then break end
        call('LPOP', q)
        gone[#gone + 1] = head
    end
    if #gone > 0 and call('LLEN', q) == 0 then call('SREM', qkeys, key) end
    return gone
end

-- ``lock`` for a non-concurrent strategy; an expired lease counts as free (a key held by
-- slots is held until its latest slot's lease ends). Returns {result, dropped entries, the
-- expired holder taken over (or false; slots are not reported)}. ``texts``: now, the lease's
-- end and ttl as text, when the caller has them. A free key (the common case) is taken in one
-- call.
local function take(locks, q, qkeys, qseq, key, owner, strategy, meta, ttl, maxp, overflow, now,
                    texts)
    texts = texts or {string.format('%d', now), string.format('%d', now + ttl),
                      string.format('%d', ttl)}
    local mine = '[' .. encode(owner) .. ',' .. encode(strategy) .. ',' .. encode(meta) .. ','
        .. texts[1] .. ',' .. texts[2] .. ',false,false,' .. texts[3] .. ']'
    if call('HSETNX', locks, key, mine) == 1 then return {'acquired', {}, false} end
    local rec = call('HGET', locks, key)
    local previous = false
    if rec then
        local held = decode(rec)
        if tonumber(held[5]) > now then
            if strategy == 'reject' then return {'busy', {}, false} end
            local id = tostring(call('INCR', qseq))
            local entry = encode({owner, strategy, meta, now, false, id})
            local result, dropped = 'queued', {}
            if strategy == 'debounce' then
                dropped = take_entries(q, qkeys, key, nil)
                result = 'debounced'
            elseif maxp then
                local depth = call('LLEN', q)
                if depth >= maxp then
                    if overflow == 'drop_newest' then return {'dropped', {}, false} end
                    dropped = take_entries(q, qkeys, key, depth - maxp + 1)
                end
            end
            call('RPUSH', q, entry)
            call('SADD', qkeys, key)
            return {result, dropped, false}
        end
        previous = not held[9] and held[1]
    end
    call('HSET', locks, key, mine)
    return {'acquired', {}, previous}
end

-- Queue ``owner``'s message behind the entries a previous holder of ``key`` left (its cycle
-- just took the lock): returns {result, dropped entries}. ``debounce`` replaces them; a full
-- queue drops its oldest, or under ``drop_newest`` refuses the message ('dropped').
local function queue_behind(q, qkeys, qseq, key, owner, strategy, meta, maxp, overflow, now)
    local result, dropped = 'queued', {}
    if strategy == 'debounce' then
        dropped = take_entries(q, qkeys, key, nil)
        result = 'debounced'
    elseif maxp then
        local depth = call('LLEN', q)
        if depth >= maxp then
            if overflow == 'drop_newest' then return {'dropped', {}} end
            dropped = take_entries(q, qkeys, key, depth - maxp + 1)
        end
    end
    local id = tostring(call('INCR', qseq))
    call('RPUSH', q, encode({owner, strategy, meta, now, false, id}))
    call('SADD', qkeys, key)
    return {result, dropped}
end

-- Release ``owner``'s lock (owner '': whoever holds it) and hand over its pending entries
-- (those older than ``pending_ttl`` dropped). With ``only_if_idle``: release only when none
-- is pending, else keep the lock (its lease renewed by its ttl). Returns {1, '', entries,
-- expired} when released, {0, holder} when ``owner`` does not hold it ('' holder: nobody), {3}
-- when the key is held by slots (``lua/slots.lua`` releases a slot; '' frees them all here).
-- ``mine``: the caller has just read that ``owner`` holds it (not by slots): not read again.
local function release(locks, q, qkeys, key, owner, only_if_idle, pending_ttl, now, mine)
    local rec, held = mine, nil
    if not mine then
        rec = call('HGET', locks, key)
        held = rec and decode(rec)
        if owner ~= '' and (not held or held[1] ~= owner or held[9]) then
            return held and held[9] and {3} or {0, held and held[1] or ''}
        end
    end
    local expired = expire(q, qkeys, key, pending_ttl, now)
    local entries = take_entries(q, qkeys, key, nil)
    if only_if_idle and #entries > 0 then
        held = held or decode(rec)
        held[5] = now + tonumber(held[8] or (tonumber(held[5]) - tonumber(held[4])))
        held[7] = false
        call('HSET', locks, key, encode(held))
    elseif rec then
        call('HDEL', locks, key)
    end
    return {1, '', entries, expired}
end

-- Record that ``id`` was touched now (state retention).
local function touch(zset, id, now)
    call('ZADD', zset, now, id)
end
