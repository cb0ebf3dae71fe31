-- KEYS: locks, dd, ddc, ddt, qkeys, ts, cs, tt, ct, subs, subt, lkeys.
-- ARGV: dedupe_limit, dry_run ('1'), min_age_ms, pending_ttl_ms|'', state_older_ms|'',
-- the namespace's key prefix (pending lists are prefix .. 'q:' .. key, lists
-- prefix .. 'l:' .. key). Redis expires lists itself; prune drops their keys from lkeys (and
-- their exact expiry texts from prefix .. 'lexp'). Expired slots are freed one by one (each
-- counts as an expired lock).
-- Returns {expired_locks, trimmed, pending_expired, states_removed, subscriptions_removed,
-- {key, {entries}, key, {entries}, ...}, lists_expired} (the pending entries dropped as
-- expired; the lists Redis expired, dropped from lkeys).
local now = now_ms()
local dry = ARGV[2] == '1'
local prefix = ARGV[6]
local expired = 0
local slots = false
local cursor = '0'
repeat
    local page = call('HSCAN', KEYS[1], cursor, 'COUNT', 1000)
    cursor = page[1]
    local items = page[2]
    for i = 1, #items, 2 do
        local held = decode(items[i + 1])
        if held[9] then  -- slots: each expired holder counts (``lua/slots.lua``)
            if not slots then
                -- @slots
                slots = slot_functions()
            end
            expired = expired + slots.prune(KEYS[1], items[i], held, now, dry)
        elseif tonumber(held[5]) <= now then
            expired = expired + 1
            if not dry then call('HDEL', KEYS[1], items[i]) end
        end
    end
until cursor == '0'
local trimmed = trim(KEYS[2], KEYS[3], KEYS[4], KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[3]), now,
                     dry)
local pending_ttl = tonumber(ARGV[4])
local dropped, pending_expired = {}, 0
if pending_ttl then
    for _, key in ipairs(call('SMEMBERS', KEYS[5])) do
        local q = prefix .. 'q:' .. key
        local old = {}
        if dry then
            for _, raw in ipairs(call('LRANGE', q, 0, -1)) do
                if tonumber(decode(raw)[4]) < now - pending_ttl then old[#old + 1] = raw end
            end
        else
            old = expire(q, KEYS[5], key, pending_ttl, now)
        end
        if #old > 0 then
            dropped[#dropped + 1] = key
            dropped[#dropped + 1] = old
            pending_expired = pending_expired + #old
        end
    end
end
local states, subs = 0, 0
local older = tonumber(ARGV[5])
if older then
    local cutoff = now - older
    -- A subscription is kept while its thread's state is touched, and the other way round.
    for _, thread in ipairs(call('ZRANGEBYSCORE', KEYS[11], '-inf', '(' .. cutoff)) do
        local touched = call('ZSCORE', KEYS[8], thread)
        if not touched or tonumber(touched) < cutoff then
            subs = subs + 1
            if not dry then
                call('SREM', KEYS[10], thread)
                call('ZREM', KEYS[11], thread)
            end
        end
    end
    for _, pair in ipairs({{KEYS[6], KEYS[8], true}, {KEYS[7], KEYS[9], false}}) do
        for _, id in ipairs(call('ZRANGEBYSCORE', pair[2], '-inf', '(' .. cutoff)) do
            local subscribed = pair[3] and call('ZSCORE', KEYS[11], id)
            if not (subscribed and tonumber(subscribed) >= cutoff) then
                states = states + 1
                if not dry then
                    call('HDEL', pair[1], id)
                    call('ZREM', pair[2], id)
                end
            end
        end
    end
end
local lists = 0
for _, key in ipairs(call('ZRANGEBYSCORE', KEYS[12], '-inf', now)) do
    if call('EXISTS', prefix .. 'l:' .. key) == 0 then  -- Redis expired it
        lists = lists + 1
        if not dry then
            call('ZREM', KEYS[12], key)
            call('HDEL', prefix .. 'lexp', key)
        end
    end
end
return {expired, trimmed, pending_expired, states, subs, dropped, lists}
