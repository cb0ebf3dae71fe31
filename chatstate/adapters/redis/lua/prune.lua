-- KEYS: locks, dd, ddc. ARGV: dedupe_limit, dry_run ('1'). Returns {expired_locks, trimmed}.
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
