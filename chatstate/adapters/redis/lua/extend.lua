-- KEYS: locks. ARGV: key, owner, ttl_ms. Returns 1 when renewed (ttl_ms becomes its lease).
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return 0 end
local held = cjson.decode(rec)
local now = now_ms()
if held[1] ~= ARGV[2] or tonumber(held[5]) <= now then return 0 end
held[5] = now + tonumber(ARGV[3])
held[7] = false
held[8] = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(held))
return 1
