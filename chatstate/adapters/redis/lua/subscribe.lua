-- KEYS: subs, subt. ARGV: thread, '1' to subscribe (and touch), '0' to unsubscribe.
if ARGV[2] == '1' then
    call('SADD', KEYS[1], ARGV[1])
    touch(KEYS[2], ARGV[1], now_ms())
else
    call('SREM', KEYS[1], ARGV[1])
    call('ZREM', KEYS[2], ARGV[1])
end
return 1
