-- KEYS: locks, q, qkeys, qseq. ARGV: key, owner, strategy, meta, ttl_ms, max_pending|'',
-- overflow. Returns {result, dropped entries, taken-over holder|false}.
return take(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
            tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], now_ms())
