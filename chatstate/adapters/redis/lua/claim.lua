-- KEYS: dd, ddseq, ddc, locks. ARGV: member, limit. A done claim.
return claim(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], tonumber(ARGV[2]), false, now_ms())
