-- KEYS: subs, subt. ARGV: thread, '1' to subscribe (and touch), '0' to unsubscribe.
if ARGV[2] == '1' then
    redis.call('SADD', KEYS[1], ARGV[1])
    touch(KEYS[2], ARGV[1], now_ms())
else
    redis.call('SREM', KEYS[1], ARGV[1])
    redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
