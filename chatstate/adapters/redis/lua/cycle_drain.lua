-- KEYS: locks, q, qkeys, ts, ddc, tt, qseq, then (with effects) those of ``effects.lua``.
-- ARGV: thread, owner, state_json|'', member, finished id|'', ttl_ms, pending_ttl_ms|'',
-- claim ('1': mark the cycle's claim done; it must be in progress and the owner's), holds
-- ('1': the lock, 's': a slot), then (with effects) those of ``effects.lua``.
-- One step of a drain: write the state (and the claim done) and the effects, remove the
-- entries gathered and the entry just finished, drop expired entries, then hand out the
-- oldest left -- it stays queued, the lease renewed -- or, when none is left, release the
-- lock. Under a slot, the oldest entry no other live holder was handed, marked as handed to
-- this owner (``lua/slots.lua``); none left: the slot is freed. Returns {1, '',
-- {entry}|{}, expired}, or {0, holder} when the lease went to another holder, {0, owner} when
-- the claim is no longer the owner's, {2, message} when an effect cannot be written
-- (nothing written).
local now = now_ms()
local rec = call('HGET', KEYS[1], ARGV[1])
local held = rec and decode(rec)
local slots, slot = false, false
if ARGV[9] == 's' then
    -- @slots
    slots = slot_functions()
    slot = slots.index(held, ARGV[2])
    if not slot then return {0, held and slots.first_live(held, now) or ''} end
elseif not held or held[1] ~= ARGV[2] or held[9] then
    return {0, held and held[1] or ''}
end
local settle = ARGV[8] == '1'
if settle then
    local claim = call('HGET', KEYS[5], ARGV[4])
    if not claim or decode(claim)[1] ~= ARGV[2] then return {0, ARGV[2]} end
end
local plan = false
if prepare_effects then
    local err
    plan, err = prepare_effects(8, 10, ARGV[1])
    if not plan then return {2, err} end
end
if settle then call('HDEL', KEYS[5], ARGV[4]) end
if plan then
    write_effects(plan, now)
    remove_taken(plan, KEYS[2], KEYS[3], ARGV[1])
end
if ARGV[3] ~= '' then
    call('HSET', KEYS[4], ARGV[1], ARGV[3])
    touch(KEYS[6], ARGV[1], now)
end
if ARGV[5] ~= '' then  -- the entry finished: at the front, unless dropped meanwhile
    local first = call('LINDEX', KEYS[2], 0)
    if first and decode(first)[6] == ARGV[5] then
        call('LPOP', KEYS[2])
    else
        for _, raw in ipairs(call('LRANGE', KEYS[2], 0, -1)) do
            if decode(raw)[6] == ARGV[5] then
                call('LREM', KEYS[2], 1, raw)
                break
            end
        end
    end
end
local expired = expire(KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[7]), now)
if slots then
    local head = slots.next_entry(KEYS[1], KEYS[2], KEYS[3], KEYS[7], ARGV[1], held, slot,
                                  ARGV[2], tonumber(ARGV[6]), now)
    return {1, '', head and {head} or {}, expired}
end
local head = call('LINDEX', KEYS[2], 0)
if not head then
    call('HDEL', KEYS[1], ARGV[1])
    call('SREM', KEYS[3], ARGV[1])
    return {1, '', {}, expired}
end
local entry = decode(head)
if not entry[6] then  -- queued before entries had ids: give it one where it stands
    entry[6] = tostring(call('INCR', KEYS[7]))
    head = encode(entry)
    call('LSET', KEYS[2], 0, head)
end
held[5] = now + tonumber(ARGV[6])
held[7] = false
call('HSET', KEYS[1], ARGV[1], encode(held))
return {1, '', {head}, expired}
