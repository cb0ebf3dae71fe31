"""The Lua scripts of ``RedisStateAdapter``: each operation is one atomic server-side step.

Redis runs a script without interleaving any other command, so a script that reads and then
writes is what a PL/pgSQL function is to the PostgreSQL fast path. The scripts share a few
Lua functions (below), composed into one script per operation; the adapter loads each once
per server and calls it by SHA (``EVALSHA``; on ``NOSCRIPT`` it loads it and calls again).

Time is Redis's clock (``TIME``), in milliseconds, so hosts whose clocks drift agree on
who holds a lease.

Stored records (all JSON text, written by Lua's ``cjson`` or by Python's ``json``):

* a lock, a field of the ``locks`` hash:
  ``[owner, strategy, metadata_json, acquired_ms, expires_ms, acquired_at|false,
  expires_at|false]`` — the two last are the exact ISO text a snapshot gave (kept so a
  round trip is exact) until the lease changes;
* a pending entry, an item of a ``q:<key>`` list:
  ``[owner, strategy, metadata_json, enqueued_ms, enqueued_at|false]``;
* a dedupe claim in progress, a field of the ``ddc`` hash (the member's, in ``dd``):
  ``[owner, thread_id, expires_ms, expires_at|false]``. A member of ``dd`` without one is
  done.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LuaScript:
    """A script's text and SHA1 (its name in Redis's script cache)."""

    name: str
    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.text.encode()).hexdigest())


_PRELUDE = r"""
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
"""


def _script(name: str, body: str) -> LuaScript:
    return LuaScript(name, _PRELUDE + body)


# KEYS: dd, ddseq, ddc, locks. ARGV: member, limit. A done claim.
CLAIM = _script(
    "claim",
    "return claim(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], tonumber(ARGV[2]), false, now_ms())",
)

# KEYS: dd, ddc, locks. ARGV: member. Returns 1 when the member makes its message a duplicate.
IS_DUPLICATE = _script(
    "is_duplicate",
    r"""
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if holds(KEYS[2], KEYS[3], ARGV[1], now_ms()) then return 1 end
return 0
""",
)

# KEYS: locks, q, qkeys. ARGV: key, owner, strategy, meta, ttl_ms, max_pending|'', overflow.
LOCK = _script(
    "lock",
    "return take(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4],"
    " tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], now_ms())",
)

# KEYS: locks. ARGV: key, owner, ttl_ms. Returns 1 when renewed.
EXTEND = _script(
    "extend",
    r"""
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return 0 end
local held = cjson.decode(rec)
local now = now_ms()
if held[1] ~= ARGV[2] or tonumber(held[5]) <= now then return 0 end
held[5] = now + tonumber(ARGV[3])
held[7] = false
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(held))
return 1
""",
)

# KEYS: locks, q, qkeys. ARGV: key, owner ('' to force), keep ('1' keeps the pending list).
RELEASE = _script(
    "release",
    "return release(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3] == '1')",
)

# KEYS: hash. ARGV: field, expected ('' when absent), new. Returns 1 when written.
COMPARE_AND_SET = _script(
    "compare_and_set",
    r"""
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
""",
)

# The message cycle: entry (claim, lock, subscription, state), commit (state, claim done,
# release) and abort (withdraw the claim, release), each one script.
# KEYS: dd, ddseq, ddc, subs, ts, locks, q, qkeys.
# ARGV: member, limit, thread, owner, strategy, meta, ttl_ms.
# Returns {claimed, subscribed, result, state|nil}, or {0, subscribed, in_progress} for a
# duplicate. A message queued or debounced behind the lock is done at once; one refused
# (busy) has its claim released at once, so that its redelivery is handled.
CYCLE_ENTER = _script(
    "cycle_enter",
    r"""
local now = now_ms()
local ttl = tonumber(ARGV[7])
local rec = cjson.encode({ARGV[4], ARGV[3], now + ttl, false})
local claimed = claim(KEYS[1], KEYS[2], KEYS[3], KEYS[6], ARGV[1], tonumber(ARGV[2]), rec, now)
if claimed == 0 then
    return {0, redis.call('SISMEMBER', KEYS[4], ARGV[3]), redis.call('HEXISTS', KEYS[3], ARGV[1])}
end
local result = 'acquired'
if ARGV[5] ~= 'concurrent' then
    result = take(KEYS[6], KEYS[7], KEYS[8], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ttl, nil,
                  'drop_oldest', now)
end
if result == 'busy' then  -- refused: released at once, a redelivery is handled
    redis.call('HSET', KEYS[3], ARGV[1], cjson.encode({ARGV[4], '', now, false}))
elseif result ~= 'acquired' then  -- stored behind the lock: done
    redis.call('HDEL', KEYS[3], ARGV[1])
end
local subscribed = redis.call('SISMEMBER', KEYS[4], ARGV[3])
local state = false
if result == 'acquired' then state = redis.call('HGET', KEYS[5], ARGV[3]) end
return {1, subscribed, result, state}
""",
)

# KEYS: locks, q, qkeys, ts, dd, ddc.
# ARGV: thread, owner, state_json ('' leaves the state as is), member, locked ('1'|'0').
# Returns what ``release`` returns ({0, holder}: the lease went to another holder, nothing
# written). Under 'concurrent' the claim is the lease.
CYCLE_COMMIT = _script(
    "cycle_commit",
    r"""
local rec = redis.call('HGET', KEYS[6], ARGV[4])
local claim_owner = rec and cjson.decode(rec)[1] or ''
local released = {1, '', {}}
if ARGV[5] == '1' then
    released = release(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], false)
    if released[1] == 0 then return released end
elseif claim_owner ~= ARGV[2] and redis.call('ZSCORE', KEYS[5], ARGV[4]) then
    return {0, claim_owner}
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[4], ARGV[1], ARGV[3]) end
if claim_owner == ARGV[2] then redis.call('HDEL', KEYS[6], ARGV[4]) end
return released
""",
)

# KEYS: dd, ddc, locks. ARGV: member, thread, owner, locked ('1'|'0'). Withdraws the claim
# only if it is in progress and ``owner``'s; releases the lock only if ``owner`` holds it
# (its pending list stays for the next holder).
CYCLE_ABORT = _script(
    "cycle_abort",
    r"""
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if rec and cjson.decode(rec)[1] == ARGV[3] then
    redis.call('ZREM', KEYS[1], ARGV[1])
    redis.call('HDEL', KEYS[2], ARGV[1])
end
if ARGV[4] == '1' then
    local lock = redis.call('HGET', KEYS[3], ARGV[2])
    if lock and cjson.decode(lock)[1] == ARGV[3] then redis.call('HDEL', KEYS[3], ARGV[2]) end
end
return 1
""",
)

# KEYS: locks, dd, ddc. ARGV: dedupe_limit, dry_run ('1'). Returns {expired_locks, trimmed}.
PRUNE = _script(
    "prune",
    r"""
local now = now_ms()
local dry = ARGV[2] == '1'
local expired = 0
local cursor = '0'
repeat
    local page = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', 1000)
    cursor = page[1]
    local items = page[2]
    for i = 1, #items, 2 do
        if tonumber(cjson.decode(items[i + 1])[5]) <= now then
            expired = expired + 1
            if not dry then redis.call('HDEL', KEYS[1], items[i]) end
        end
    end
until cursor == '0'
local trimmed = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[1])
if trimmed < 0 then trimmed = 0 end
if trimmed > 0 and not dry then trim(KEYS[2], KEYS[3], tonumber(ARGV[1])) end
return {expired, trimmed}
""",
)

# Loading a snapshot: the new state was built under a temporary prefix; switch to it in one
# step. The keys of one namespace share a hash tag (one cluster slot), so computing the
# pending-list keys from the ``qkeys`` set inside the script stays on one node.
# ARGV: live prefix, temporary prefix. ``SECTIONS`` below names the fixed keys.
_SWITCH_COMMON = r"""
local live, tmp = ARGV[1], ARGV[2]
local sections = {'subs', 'dd', 'ddseq', 'ddc', 'ts', 'cs', 'locks', 'qkeys'}
"""

LOAD_REPLACE = _script(
    "load_replace",
    _SWITCH_COMMON
    + r"""
for _, k in ipairs(redis.call('SMEMBERS', live .. 'qkeys')) do
    redis.call('UNLINK', live .. 'q:' .. k)
end
for _, name in ipairs(sections) do
    redis.call('UNLINK', live .. name)
    if redis.call('EXISTS', tmp .. name) == 1 then
        redis.call('RENAME', tmp .. name, live .. name)
        redis.call('PERSIST', live .. name)
    end
end
for _, k in ipairs(redis.call('SMEMBERS', live .. 'qkeys')) do
    redis.call('RENAME', tmp .. 'q:' .. k, live .. 'q:' .. k)
    redis.call('PERSIST', live .. 'q:' .. k)
end
return 1
""",
)

LOAD_MERGE = _script(
    "load_merge",
    _SWITCH_COMMON
    + r"""
if redis.call('EXISTS', tmp .. 'subs') == 1 then
    redis.call('SUNIONSTORE', live .. 'subs', live .. 'subs', tmp .. 'subs')
end
for _, member in ipairs(redis.call('ZRANGE', tmp .. 'dd', 0, -1)) do
    if not redis.call('ZSCORE', live .. 'dd', member) then
        redis.call('ZADD', live .. 'dd', redis.call('INCR', live .. 'ddseq'), member)
    end
end
for _, name in ipairs({'ts', 'cs', 'locks'}) do
    local items = redis.call('HGETALL', tmp .. name)
    for i = 1, #items, 2 do redis.call('HSET', live .. name, items[i], items[i + 1]) end
end
for _, k in ipairs(redis.call('SMEMBERS', tmp .. 'qkeys')) do
    for _, entry in ipairs(redis.call('LRANGE', tmp .. 'q:' .. k, 0, -1)) do
        redis.call('RPUSH', live .. 'q:' .. k, entry)
    end
    redis.call('SADD', live .. 'qkeys', k)
    redis.call('UNLINK', tmp .. 'q:' .. k)
end
for _, name in ipairs(sections) do redis.call('UNLINK', tmp .. name) end
return 1
""",
)


# Snapshots are read from a frozen copy, taken in one step (``COPY`` of each key, about half
# a second per million dedupe keys) so the sections describe one state. Sorted views of the
# copy are then built chunk by chunk (``SORT_CHUNK``, a few milliseconds each, so Redis
# serves others in between): sorted sets whose scores are all equal list their members in
# byte order, which for UTF-8 is code-point order, the order of the snapshot's JSON form.
# ARGV: live prefix, snapshot prefix, ttl_ms (the copy expires if the reader dies).
# Returns the counts {subscriptions, dedupe, thread_state, channel_state, locks, pending}.
FREEZE = _script(
    "freeze",
    r"""
local live, snap, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local function copy(name)
    if redis.call('COPY', live .. name, snap .. name) == 1 then
        redis.call('PEXPIRE', snap .. name, ttl)
    end
end
for _, name in ipairs({'subs', 'dd', 'ddc', 'ts', 'cs', 'locks', 'qkeys'}) do copy(name) end
for _, k in ipairs(redis.call('SMEMBERS', live .. 'qkeys')) do copy('q:' .. k) end
return {redis.call('SCARD', snap .. 'subs'), redis.call('ZCARD', snap .. 'dd'),
        redis.call('HLEN', snap .. 'ts'), redis.call('HLEN', snap .. 'cs'),
        redis.call('HLEN', snap .. 'locks'), redis.call('SCARD', snap .. 'qkeys')}
""",
)

# Add the next chunk of a frozen key's members (a zset's by rank, a set's or a hash's field
# names by cursor) to a sorted set with score 0. KEYS: source, destination.
# ARGV: kind ('zset', 'set', 'hash'), position (rank or cursor), count, ttl_ms.
# Returns the next position ('0' when done).
SORT_CHUNK = _script(
    "sort_chunk",
    r"""
local kind, position, count = ARGV[1], ARGV[2], tonumber(ARGV[3])
local members, step, next_position = {}, 1, '0'
if kind == 'zset' then
    members = redis.call('ZRANGE', KEYS[1], position, tonumber(position) + count - 1)
    if #members == count then next_position = tostring(tonumber(position) + count) end
else
    local page = redis.call(kind == 'set' and 'SSCAN' or 'HSCAN', KEYS[1], position,
                            'COUNT', count)
    next_position, members = page[1], page[2]
    if kind == 'hash' then step = 2 end
end
local args = {}
for i = 1, #members, step do
    args[#args + 1] = 0
    args[#args + 1] = members[i]
    if #args >= 2000 then
        redis.call('ZADD', KEYS[2], unpack(args))
        args = {}
    end
end
if #args > 0 then redis.call('ZADD', KEYS[2], unpack(args)) end
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]))
return next_position
""",
)

# One page of a frozen hash in id order. KEYS: the ids zset, the hash. ARGV: start, stop.
# Returns {ids, values}.
HASH_PAGE = _script(
    "hash_page",
    r"""
local ids = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])
if #ids == 0 then return {{}, {}} end
return {ids, redis.call('HMGET', KEYS[2], unpack(ids))}
""",
)

#: Every script, e.g. to preload them (``SCRIPT LOAD``) on a new server.
ALL = (
    CLAIM,
    IS_DUPLICATE,
    LOCK,
    EXTEND,
    RELEASE,
    COMPARE_AND_SET,
    CYCLE_ENTER,
    CYCLE_COMMIT,
    CYCLE_ABORT,
    PRUNE,
    LOAD_REPLACE,
    LOAD_MERGE,
    FREEZE,
    SORT_CHUNK,
    HASH_PAGE,
)
