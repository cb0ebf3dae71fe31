-- KEYS: locks, ddc, dd, ddt, tt, ct. ARGV: none. Read-only: changes nothing.
-- Returns {locks held (lease running), claims in progress and alive, newest activity ms or -1,
-- now ms}: activity is a dedupe key claimed (the window's newest member's claim time), a lock
-- taken (a lock's acquired time) or a state written (the newest touch of tt / ct).
local now = now_ms()
local held, newest = 0, -1
for _, rec in ipairs(call('HVALS', KEYS[1])) do
    local lock = decode(rec)
    if tonumber(lock[5]) > now then held = held + 1 end
    if tonumber(lock[4]) > newest then newest = tonumber(lock[4]) end
end
local claims = 0
for _, m in ipairs(call('HKEYS', KEYS[2])) do
    local c = decode(call('HGET', KEYS[2], m))
    if c[2] ~= '' and live(KEYS[2], KEYS[1], m, now) then claims = claims + 1 end
end
local last = call('ZRANGE', KEYS[3], -1, -1)
if last[1] then
    local born = tonumber(call('HGET', KEYS[4], last[1]))
    if born and born > newest then newest = born end
end
for i = 5, 6 do
    local top = call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
    if top[2] and tonumber(top[2]) > newest then newest = tonumber(top[2]) end
end
return {held, claims, newest, now}
