-- The message cycle: entry (claim, lock, subscription, state), commit (state, claim done,
-- release), drain steps, renewal and abort, each one script.
-- KEYS: dd, ddseq, ddc, ddt, subs, ts, locks, q, qkeys, qseq[, the thread's history list].
-- ARGV: member, limit, thread, owner, strategy, meta, ttl_ms, min_age_ms, max_pending|'',
-- overflow[, how many newest history items to read (0: none)[, max_concurrent]].
-- Returns {1, subscribed, result, state|false, dropped, taken-over holder|false, held,
-- history items (oldest first; false unless asked for and held)}, or {0, subscribed,
-- in_progress} for a duplicate. Acquired and held with nothing dropped, taken over or read
-- from the history (the common case), it returns one string instead: '1', then '1' or '0'
-- (subscribed), then the state's JSON text, if any (a table reply costs the server a look
-- for each of its special fields). A message queued or debounced
-- behind the lock is done at once; one refused (busy, or dropped by a full queue) has its claim
-- released at once, so that its redelivery is handled. A queue or debounce cycle that takes
-- a lock with entries left queued (its previous holder died or failed) queues its message
-- behind them and holds the lock (held = 1): its drain hands them out in arrival order.
-- With max_concurrent ('concurrent' only) the cycle takes a slot (``lua/slots.lua``), else
-- its message is queued; one that takes a slot while entries wait that no other live holder
-- was handed is queued behind them and holds its slot, likewise.
local now, now_text = clock()
local ttl = tonumber(ARGV[7])
local expires = string.format('%d', now + ttl)
local rec = claim_record(ARGV[4], ARGV[3], expires)
local claimed = claim(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[7], ARGV[1], tonumber(ARGV[2]),
                      tonumber(ARGV[8]), rec, now, now_text)
if claimed == 0 then
    return {0, call('SISMEMBER', KEYS[5], ARGV[3]), call('HEXISTS', KEYS[3], ARGV[1])}
end
local outcome, slots
if ARGV[5] ~= 'concurrent' then
    outcome = take(KEYS[7], KEYS[8], KEYS[9], KEYS[10], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ttl,
                   tonumber(ARGV[9]), ARGV[10], now, {now_text, expires, ARGV[7]})
elseif ARGV[12] then
    -- @slots
    slots = slot_functions()
    outcome = slots.take(KEYS[7], KEYS[8], KEYS[9], KEYS[10], ARGV[3], ARGV[4], ARGV[6], ttl,
                         tonumber(ARGV[9]), ARGV[10], tonumber(ARGV[12]), now)
else  -- uncapped 'concurrent': the claim is the lease
    outcome = {'acquired', {}, false}
end
local result = outcome[1]
local held = result == 'acquired'
if held and (((ARGV[5] == 'queue' or ARGV[5] == 'debounce') and call('LLEN', KEYS[8]) > 0)
             or (slots and slots.waiting(KEYS[7], KEYS[8], ARGV[3], ARGV[4], now))) then
    local behind = queue_behind(KEYS[8], KEYS[9], KEYS[10], ARGV[3], ARGV[4], ARGV[5], ARGV[6],
                                tonumber(ARGV[9]), ARGV[10], now)
    result = behind[1]
    outcome[2] = behind[2]
end
if result == 'busy' or result == 'dropped' then  -- refused: released, a redelivery is handled
    call('HSET', KEYS[3], ARGV[1], encode({ARGV[4], '', now, false}))
elseif result ~= 'acquired' then  -- stored behind the lock: done
    call('HDEL', KEYS[3], ARGV[1])
end
local subscribed = call('SISMEMBER', KEYS[5], ARGV[3])
local state, history = false, false
if held then
    state = call('HGET', KEYS[6], ARGV[3])
    if KEYS[11] then history = call('LRANGE', KEYS[11], -tonumber(ARGV[11]), -1) end
end
if held and result == 'acquired' and #outcome[2] == 0 and not outcome[3]
        and not (history and #history > 0) then
    return (subscribed == 1 and '11' or '10') .. (state or '')  -- the common reply
end
return {1, subscribed, result, state, outcome[2], outcome[3], held and 1 or 0, history}
