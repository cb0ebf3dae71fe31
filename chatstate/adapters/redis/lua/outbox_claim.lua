-- KEYS: ob, obp, obk, oseq, obh. ARGV: owner, limit, lease_ms, the namespace's prefix.
-- Leases up to ``limit`` due entries to ``owner``; returns {id, record, payload, ...}, oldest
-- first. Candidates: the threads whose head is due (``obh``), fewest first by due time, at
-- most ``limit`` of them; from each a run of due entries from its head, merged by id (commit
-- order). A thread with an entry leased to anyone (lease running) is skipped; its place is
-- corrected, as is the place of a thread found not due after all. Nothing is written until
-- every entry taken is known.
local o = KEYS
local owner, limit, lease, prefix = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local now = now_ms()
local function leased(e) return e[7] ~= '' and e[8] > now end

local heads, places, runs = {}, {}, 0  -- heads: {id number, id, record, thread, position}
local offset = 0
while runs < limit do
    local page = call('ZRANGEBYSCORE', o[5], '-inf', now, 'LIMIT', offset, limit)
    if #page == 0 then break end
    offset = offset + #page
    for _, thread in ipairs(page) do
        local id = call('LINDEX', prefix .. 'obq:' .. thread, 0)
        local e = id and ob_entry(o, id)
        if not e then
            places[thread] = false
        elseif leased(e) then
            places[thread] = e[8]
        elseif e[4] > now then
            places[thread] = e[4]
        else
            heads[#heads + 1] = {tonumber(id), id, e, thread, 0}
            runs = runs + 1
            if runs >= limit then break end
        end
    end
end

local taken, skipped = {}, {}
while #taken < limit and #heads > 0 do
    local best = 1
    for i = 2, #heads do
        if heads[i][1] < heads[best][1] then best = i end
    end
    local head = heads[best]
    local thread = head[4]
    taken[#taken + 1] = head
    local position = head[5] + 1
    local id = call('LINDEX', prefix .. 'obq:' .. thread, position)
    local e = id and ob_entry(o, id)
    if e and leased(e) then  -- leased to someone: the thread waits for that lease
        skipped[thread] = e[8]
        table.remove(heads, best)
    elseif e and e[4] <= now then
        heads[best] = {tonumber(id), id, e, thread, position}
    else
        table.remove(heads, best)
    end
end

local until_ms = now + lease
local reply = {}
for _, head in ipairs(taken) do
    local thread = head[4]
    if not skipped[thread] then
        local e = head[3]
        e[7], e[8] = owner, until_ms
        local record = encode(e)
        call('HSET', o[1], head[2], record)
        places[thread] = until_ms
        reply[#reply + 1] = head[2]
        reply[#reply + 1] = record
        reply[#reply + 1] = call('HGET', o[2], head[2])
    end
end
for thread, at in pairs(skipped) do places[thread] = at end
for thread, at in pairs(places) do
    if at then call('ZADD', o[5], at, thread) else call('ZREM', o[5], thread) end
end
return reply
