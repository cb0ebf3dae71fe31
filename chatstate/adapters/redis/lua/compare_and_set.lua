-- KEYS: hash, touched zset. ARGV: field, expected ('' when absent), new. Returns 1 when
-- written.
if (call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
call('HSET', KEYS[1], ARGV[1], ARGV[3])
touch(KEYS[2], ARGV[1], now_ms())
return 1
