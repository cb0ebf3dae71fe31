-- KEYS: hash, touched zset. ARGV: field, json.
call('HSET', KEYS[1], ARGV[1], ARGV[2])
touch(KEYS[2], ARGV[1], now_ms())
return 1
