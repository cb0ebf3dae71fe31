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
-- written (a channel number out of range).
local function prepare_effects(kb, ab, thread)
    local plan = {kb = kb, thread = thread}
    local channel, count = ARGV[ab], tonumber(ARGV[ab + 1])
    local a = ab + 2
    if count > 0 then
        local text, err = apply_channel_ops(redis.call('HGET', KEYS[kb], channel), a, count)
        if not text then return nil, err end
        plan.channel, plan.text = channel, text
    end
    a = a + 3 * count
    plan.subscribe = ARGV[a]
    plan.lists, plan.lists_at = tonumber(ARGV[a + 1]), a + 2
    a = a + 2 + 4 * plan.lists
    plan.sends, plan.sends_at = tonumber(ARGV[a]), a + 1
    a = a + 1 + 3 * plan.sends
    plan.taken, plan.taken_at = tonumber(ARGV[a]), a + 1
    return plan
end

-- Remove the pending entries of ``q`` (the lock ``key``'s) whose ids the plan lists.
local function remove_taken(plan, q, qkeys, key)
    if plan.taken == 0 then return end
    local ids = {}
    for i = 0, plan.taken - 1 do ids[ARGV[plan.taken_at + i]] = true end
    for _, raw in ipairs(redis.call('LRANGE', q, 0, -1)) do
        if ids[cjson.decode(raw)[6]] then redis.call('LREM', q, 1, raw) end
    end
    if redis.call('LLEN', q) == 0 then redis.call('SREM', qkeys, key) end
end

-- Write the prepared ``plan``; ``now_text``: ``now`` as text, when the caller has it.
local function write_effects(plan, now, now_text)
    local kb, thread = plan.kb, plan.thread
    if plan.channel then
        redis.call('HSET', KEYS[kb], plan.channel, plan.text)
        touch(KEYS[kb + 1], plan.channel, now_text or now)
    end
    if plan.subscribe == '1' then
        redis.call('SADD', KEYS[kb + 2], thread)
        touch(KEYS[kb + 3], thread, now_text or now)
    elseif plan.subscribe == '0' then
        redis.call('SREM', KEYS[kb + 2], thread)
        redis.call('ZREM', KEYS[kb + 3], thread)
    end
    local k = kb + 10
    for i = 0, plan.lists - 1 do
        local a = plan.lists_at + 4 * i
        append_item(KEYS[kb + 4], KEYS[k + i], ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]),
                    tonumber(ARGV[a + 3]), now)
    end
    k = k + plan.lists
    local o = {KEYS[kb + 5], KEYS[kb + 6], KEYS[kb + 7], KEYS[kb + 8], KEYS[kb + 9]}
    for i = 0, plan.sends - 1 do
        local a = plan.sends_at + 3 * i
        ob_enqueue(o, KEYS[k + i], ARGV[a], ARGV[a + 1], ARGV[a + 2], now)
    end
end
