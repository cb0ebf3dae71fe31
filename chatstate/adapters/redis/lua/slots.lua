-- Slots (capped 'concurrent'): a key held by up to ``max_concurrent`` owners at once, each
-- with its own lease. The key's record in ``locks`` summarizes its holders, so that every
-- exclusive path sees a held lock, and pays nothing new:
--   [first owner, 'concurrent', first metadata, first acquired_ms, latest expires_ms, false,
--    false, first ttl_ms, holders]
-- with ``holders`` = {{owner, expires_ms, acquired_ms, ttl_ms, metadata_json,
-- acquired_at|false, expires_at|false}, ...} in the order they took their slots. A holder
-- whose lease ran out is dropped when someone needs the room (a take) or by prune; until
-- then it may still commit. A queued entry handed to a holder's drain carries the mark
-- ``owner, until_ms`` as its elements 7 and 8: no other holder is handed it while that holder
-- lives, nor before ``until``.
-- A script inserts this library (a ``-- @slots`` line) inside the branch that meets slots,
-- and calls ``slot_functions()`` there: its other paths never build these functions.
local function slot_functions()
    -- The holder index of ``owner`` in the decoded record ``held`` (nil: none).
    local function index(held, owner)
        if not held or not held[9] then return nil end
        for i, h in ipairs(held[9]) do
            if h[1] == owner then return i end
        end
        return nil
    end

    -- The owners of ``held`` whose lease runs, as a set.
    local function live(held, now)
        local owners = {}
        for _, h in ipairs(held[9] or {}) do
            if tonumber(h[2]) > now then owners[h[1]] = true end
        end
        return owners
    end

    -- Who a caller that is not a holder is told holds the key: the first live holder.
    local function first_live(held, now)
        for _, h in ipairs(held[9] or {}) do
            if tonumber(h[2]) > now then return h[1] end
        end
        return ''
    end

    -- Store ``holders`` as the key's record (none: the record goes).
    local function store(locks, key, holders)
        if #holders == 0 then
            call('HDEL', locks, key)
            return
        end
        local first, latest = holders[1], 0
        for _, h in ipairs(holders) do
            if tonumber(h[2]) > latest then latest = tonumber(h[2]) end
        end
        call('HSET', locks, key, encode({first[1], 'concurrent', first[5], first[3],
                                                     latest, false, false, first[4], holders}))
    end

    -- Whether the decoded entry ``e`` is handed to a holder other than ``owner`` that lives
    -- (or whose mark still runs).
    local function handed(e, owner, owners, now)
        local by = e[7]
        return by ~= nil and by ~= owner and (owners[by] or tonumber(e[8]) > now)
    end

    -- Take a slot of ``key`` for ``owner`` (at most ``cap`` live holders; a key held by a
    -- lock is full); else queue the entry, within its bound. {result, dropped, false}.
    local function take(locks, q, qkeys, qseq, key, owner, meta, ttl, maxp, overflow, cap, now)
        local rec = call('HGET', locks, key)
        local holders, mine, dead = {}, nil, false
        if rec then
            local held = decode(rec)
            if held[9] then
                for _, h in ipairs(held[9]) do
                    if tonumber(h[2]) > now then
                        holders[#holders + 1] = h
                        if h[1] == owner then mine = #holders end
                    else
                        dead = true
                    end
                end
            elseif tonumber(held[5]) > now then
                cap = 0
            end
        end
        if #holders >= cap then
            if dead then store(locks, key, holders) end
            local queued = queue_behind(q, qkeys, qseq, key, owner, 'concurrent', meta, maxp,
                                        overflow, now)
            return {queued[1], queued[2], false}
        end
        local slot = {owner, now + ttl, now, ttl, meta, false, false}
        if mine then holders[mine] = slot else holders[#holders + 1] = slot end
        store(locks, key, holders)
        return {'acquired', {}, false}
    end

    -- The oldest entry of ``q`` no holder but ``owner`` was handed: its index (0-based), its
    -- text and its decoded record; nil when none. Read by pages: each holder has at most one
    -- entry handed at a time, so the one sought is near the front.
    local function first_free(q, owner, owners, now)
        local at = 0
        while true do
            local page = call('LRANGE', q, at, at + 31)
            for i, raw in ipairs(page) do
                local e = decode(raw)
                if not handed(e, owner, owners, now) then return at + i - 1, raw, e end
            end
            if #page < 32 then return nil end
            at = at + 32
        end
    end

    -- Whether an entry of ``q`` waits that no other live holder of ``key`` was handed.
    local function waiting(locks, q, key, owner, now)
        if call('LLEN', q) == 0 then return false end
        local owners = live(decode(call('HGET', locks, key)), now)
        return first_free(q, owner, owners, now) ~= nil
    end

    -- Remove and return up to ``limit`` (nil: all) oldest entries no other live holder was
    -- handed.
    local function hand_over(q, qkeys, key, owner, owners, limit, now)
        local raws = call('LRANGE', q, 0, -1)
        local out = {}
        if #raws == 0 then return out end
        for _, raw in ipairs(raws) do
            if limit and #out >= limit then break end
            if not handed(decode(raw), owner, owners, now) then out[#out + 1] = raw end
        end
        if #out == #raws then
            call('DEL', q)
            call('SREM', qkeys, key)
        else
            for _, raw in ipairs(out) do call('LREM', q, 1, raw) end
        end
        return out
    end

    -- Unmark the entries of ``q`` handed to ``owner``.
    local function unmark(q, owner)
        for i, raw in ipairs(call('LRANGE', q, 0, -1)) do
            local e = decode(raw)
            if e[7] == owner then
                e[7], e[8] = nil, nil
                call('LSET', q, i - 1, encode(e))
            end
        end
    end

    -- Free ``owner``'s slot (its index ``i`` in ``held``); ``marks``: unmark its entries too.
    local function free(locks, q, key, held, i, owner, marks)
        table.remove(held[9], i)
        store(locks, key, held[9])
        if marks then unmark(q, owner) end
    end

    -- Renew the slot ``i`` of ``held`` by ``ttl`` ms (nil: by its own lease).
    local function renew(locks, key, held, i, ttl, now)
        local h = held[9][i]
        h[2] = now + (ttl or tonumber(h[4]))
        h[7] = false
        store(locks, key, held[9])
    end

    -- ``extend_lock`` (and a cycle's renewal) of ``owner``'s slot: 1 when renewed.
    local function extend(locks, key, held, owner, ttl, now)
        local i = index(held, owner)
        if not i or tonumber(held[9][i][2]) <= now then return 0 end
        held[9][i][4] = ttl
        renew(locks, key, held, i, ttl, now)
        return 1
    end

    -- ``release_lock`` of ``owner``'s slot: {1, '', entries, expired} or {0, holder}.
    local function release(locks, q, qkeys, key, held, owner, only_if_idle, pending_ttl, now)
        local i = index(held, owner)
        if not i then return {0, first_live(held, now)} end
        local expired = expire(q, qkeys, key, pending_ttl, now)
        local entries = hand_over(q, qkeys, key, owner, live(held, now), nil, now)
        if only_if_idle and #entries > 0 then
            renew(locks, key, held, i, nil, now)
        else
            free(locks, q, key, held, i, owner, false)
        end
        return {1, '', entries, expired}
    end

    -- ``take_pending`` of a slot holder: {1, '', entries, expired} or {0, holder}.
    local function take_pending(q, qkeys, key, held, owner, limit, pending_ttl, now)
        if not index(held, owner) then return {0, first_live(held, now)} end
        local expired = expire(q, qkeys, key, pending_ttl, now)
        return {1, '', hand_over(q, qkeys, key, owner, live(held, now), limit, now), expired}
    end

    -- A drain step's next entry for ``owner`` (slot ``i``): the oldest no other live holder
    -- was handed, marked as handed to ``owner`` until ``now + ttl`` (the slot renewed alike);
    -- none left: the slot is freed (false).
    local function next_entry(locks, q, qkeys, qseq, key, held, i, owner, ttl, now)
        local at, _, e = first_free(q, owner, live(held, now), now)
        if at then
            if not e[6] then e[6] = tostring(call('INCR', qseq)) end
            e[7], e[8] = owner, now + ttl
            local raw = encode(e)
            call('LSET', q, at, raw)
            renew(locks, key, held, i, ttl, now)
            return raw
        end
        if call('LLEN', q) == 0 then call('SREM', qkeys, key) end
        free(locks, q, key, held, i, owner, false)
        return false
    end

    -- Prune's part: drop the holders whose lease ran out (``dry``: count only); how many.
    local function prune(locks, key, held, now, dry)
        local kept = {}
        for _, h in ipairs(held[9]) do
            if tonumber(h[2]) > now then kept[#kept + 1] = h end
        end
        local gone = #held[9] - #kept
        if gone > 0 and not dry then store(locks, key, kept) end
        return gone
    end

    return {index = index, first_live = first_live, take = take, waiting = waiting,
            hand_over = hand_over, live = live, free = free, extend = extend,
            release = release, take_pending = take_pending, next_entry = next_entry,
            prune = prune}
end
