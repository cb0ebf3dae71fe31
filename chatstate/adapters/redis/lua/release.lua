-- KEYS: locks, q, qkeys. ARGV: key, owner ('' to force), only_if_idle ('1'), pending_ttl_ms|''.
return release(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4]),
               now_ms())
