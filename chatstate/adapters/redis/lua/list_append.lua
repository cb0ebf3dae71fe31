-- KEYS: lkeys, the list. ARGV: list key, value (JSON text), max_length|'', ttl_ms|''.
append_item(KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), now_ms())
return 1
