-- KEYS: locks, q, qkeys. ARGV: key, owner ('' to force), keep ('1' keeps the pending list).
return release(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3] == '1')
