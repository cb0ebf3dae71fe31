-- Add the next chunk of a frozen key's members (a zset's by rank, a set's or a hash's field
-- names by cursor) to a sorted set with score 0 (kind 'ids': a hash whose field names are
-- numbers, scored by their value, so the set lists them in numeric order).
-- KEYS: source, destination. ARGV: kind ('zset', 'set', 'hash', 'ids'), position (rank or
-- cursor), count, ttl_ms. Returns the next position ('0' when done).
local kind, position, count = ARGV[1], ARGV[2], tonumber(ARGV[3])
local members, step, next_position = {}, 1, '0'
if kind == 'zset' then
    members = call('ZRANGE', KEYS[1], position, tonumber(position) + count - 1)
    if #members == count then next_position = tostring(tonumber(position) + count) end
else
    local page = call(kind == 'set' and 'SSCAN' or 'HSCAN', KEYS[1], position,
                      'COUNT', count)
    next_position, members = page[1], page[2]
    if kind ~= 'set' then step = 2 end
end
local args = {}
for i = 1, #members, step do
    args[#args + 1] = kind == 'ids' and tonumber(members[i]) or 0
    args[#args + 1] = members[i]
    if #args >= 2000 then
        call('ZADD', KEYS[2], unpack(args))
        args = {}
    end
end
if #args > 0 then call('ZADD', KEYS[2], unpack(args)) end
call('PEXPIRE', KEYS[2], tonumber(ARGV[4]))
return next_position
