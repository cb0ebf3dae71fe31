-- KEYS: locks, q, qkeys, qseq. ARGV: key, owner, meta, ttl_ms, max_pending|'', overflow,
-- max_concurrent. A slot of ``key`` (``lua/slots.lua``), else the entry queued. Returns
-- {result, dropped entries, false}.
-- @slots
return slot_functions().take(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3],
                             tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]),
                             now_ms())
