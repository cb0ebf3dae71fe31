-- What a commit or drain step writes besides the state and the claim (``effects.py`` builds
-- its KEYS and ARGV). KEYS from ``kb``: cs, ct, subs, subt, lkeys, ob, obp, obk, oseq, obh,
-- then each appended list's key, then each send's thread queue. ARGV from ``ab``: channel id,
-- n, n x (op, key as JSON text, value), subscribe ('1', '0', ''), n, n x (list key, value,
-- max_length|'', ttl_ms|''), n, n x (send key, thread, payload), n, n x (id of a pending
-- entry gathered).
-- ``prepare_effects`` reads and computes (nothing written: a step calls it after its checks
-- and before its first write); ``write_effects`` writes; ``remove_taken`` removes the
-- gathered entries (a step calls it before it hands out or over any entry).

-- The plan of the step's effects for ``thread``; nil and a message when one cannot be
-- written (a channel number out of range). Counts are read as ``ARGV[i] + 0``, which costs
-- a third of ``tonumber``.
local function prepare_effects(kb, ab, thread)
    local channel, count = ARGV[ab], ARGV[ab + 1] + 0
    local a, text = ab + 2, false
    if count > 0 then
        local err
        text, err = apply_channel_ops(call('HGET', KEYS[kb], channel), a, count)
        if not text then return nil, err end
    end
    a = a + 3 * count
    local lists = ARGV[a + 1] + 0
    local s = a + 2 + 4 * lists
    local sends = ARGV[s] + 0
    local t = s + 1 + 3 * sends
    return {kb = kb, thread = thread, channel = text and channel, text = text,
            subscribe = ARGV[a], lists = lists, lists_at = a + 2, sends = sends,
            sends_at = s + 1, taken = ARGV[t] + 0, taken_at = t + 1}
end

-- Remove the pending entries of ``q`` (the lock ``key``'s) whose ids the plan lists.
local function remove_taken(plan, q, qkeys, key)
    if plan.taken == 0 then return end
    local ids = {}
    for i = 0, plan.taken - 1 do ids[ARGV[plan.taken_at + i]] = true end
    for _, raw in ipairs(call('LRANGE', q, 0, -1)) do
        if ids[decode(raw)[6]] then call('LREM', q, 1, raw) end
    end
    if call('LLEN', q) == 0 then call('SREM', qkeys, key) end
end

-- Write the prepared ``plan``; ``now_text``: ``now`` as text, when the caller has it.
local function write_effects(plan, now, now_text)
    local kb, thread = plan.kb, plan.thread
    if plan.channel then
        call('HSET', KEYS[kb], plan.channel, plan.text)
        touch(KEYS[kb + 1], plan.channel, now_text or now)
    end
    if plan.subscribe == '1' then
        call('SADD', KEYS[kb + 2], thread)
        touch(KEYS[kb + 3], thread, now_text or now)
    elseif plan.subscribe == '0' then
        call('SREM', KEYS[kb + 2], thread)
        call('ZREM', KEYS[kb + 3], thread)
    end
    local k = kb + 5
    for i = 0, plan.lists - 1 do
        local a = plan.lists_at + 4 * i
        local max_length, ttl = ARGV[a + 2], ARGV[a + 3]
        append_item(KEYS[kb + 4], KEYS[k + i], ARGV[a], ARGV[a + 1],
                    max_length ~= '' and max_length + 0 or nil, ttl ~= '' and ttl + 0 or nil, now)
    end
    if plan.sends == 0 then return end
    k = k + plan.lists
    local o = {KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]}
    for i = 0, plan.sends - 1 do
        local a = plan.sends_at + 3 * i
        ob_enqueue(o, KEYS[k + 5 + i], ARGV[a], ARGV[a + 1], ARGV[a + 2], now)
    end
end
