-- KEYS: locks, q, qkeys. ARGV: key, owner, strategy, meta, ttl_ms, max_pending|'', overflow.
return take(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], now_ms())
