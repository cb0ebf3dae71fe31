-- Shared by every script: composed before each one's body.
if redis.replicate_commands then redis.replicate_commands() end

local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Whether the lock ``key`` is held by ``owner`` with its lease running.
local function holding(locks, key, owner, now)
    local rec = redis.call('HGET', locks, key)
    if not rec then return false end
    local held = cjson.decode(rec)
    return held[1] == owner and tonumber(held[5]) > now
end

-- Whether ``member`` (in the window) makes its message a duplicate: its claim is done, or in
-- progress and alive -- its own lease runs, or its owner holds its thread's lock.
local function holds(ddc, locks, member, now)
    local rec = redis.call('HGET', ddc, member)
    if not rec then return true end
    local c = cjson.decode(rec)
    return tonumber(c[3]) > now or holding(locks, c[2], c[1], now)
end

-- Drop the oldest members until the window holds ``limit``, and their claims.
local function trim(dd, ddc, limit)
    local n = redis.call('ZCARD', dd) - limit
    if n <= 0 then return 0 end
    if n <= 64 then
        local gone = redis.call('ZPOPMIN', dd, n)
        for i = 1, #gone, 2 do redis.call('HDEL', ddc, gone[i]) end
    else
        redis.call('ZREMRANGEBYRANK', dd, 0, n - 1)
        for _, m in ipairs(redis.call('HKEYS', ddc)) do
            if not redis.call('ZSCORE', dd, m) then redis.call('HDEL', ddc, m) end
        end
    end
    return n
end

-- Claim ``member``: 1 when this call now holds it. ``rec`` is the in-progress claim record
-- (false: done at once). A member already held is a duplicate (0); one whose claim is in
-- progress and dead is taken over in its place. A new member is the newest; the window is
-- then trimmed to ``limit``. (A duplicate still advances the counter: scores only need to
-- grow, ranks make the window.)
local function claim(dd, seq, ddc, locks, member, limit, rec, now)
    if redis.call('ZADD', dd, 'NX', redis.call('INCR', seq), member) == 0 then
        if holds(ddc, locks, member, now) then return 0 end
    else
        trim(dd, ddc, limit)
    end
    if rec then redis.call('HSET', ddc, member, rec) else redis.call('HDEL', ddc, member) end
    return 1
end

-- ``lock`` for a non-concurrent strategy; an expired lease counts as free.
local function take(locks, q, qkeys, key, owner, strategy, meta, ttl, maxp, overflow, now)
    local rec = redis.call('HGET', locks, key)
    if rec and tonumber(cjson.decode(rec)[5]) > now then
        if strategy == 'reject' then return 'busy' end
        local entry = cjson.encode({owner, strategy, meta, now, false})
        local result = 'queued'
        if strategy == 'debounce' then
            redis.call('DEL', q)
            result = 'debounced'
        elseif maxp then
            local depth = redis.call('LLEN', q)
            if depth >= maxp then
                if overflow == 'drop_newest' then return 'dropped' end
                redis.call('LTRIM', q, depth - maxp + 1, -1)
            end
        end
        redis.call('RPUSH', q, entry)
        redis.call('SADD', qkeys, key)
        return result
    end
    redis.call('HSET', locks, key,
               cjson.encode({owner, strategy, meta, now, now + ttl, false, false}))
    return 'acquired'
end

-- Remove ``owner``'s lock (owner '': whoever holds it) and, unless ``keep``, its pending
-- list. Returns {1, '', entries} when released, {0, holder} when not ('' holder: nobody).
local function release(locks, q, qkeys, key, owner, keep)
    local rec = redis.call('HGET', locks, key)
    if owner ~= '' then
        if not rec then return {0, ''} end
        local holder = cjson.decode(rec)[1]
        if holder ~= owner then return {0, holder} end
    end
    if rec then redis.call('HDEL', locks, key) end
    if keep then return {1, '', {}} end
    local entries = redis.call('LRANGE', q, 0, -1)
    if #entries > 0 then
        redis.call('DEL', q)
        redis.call('SREM', qkeys, key)
    end
    return {1, '', entries}
end
