-- KEYS: dd, ddseq, ddc, ddt, locks. ARGV: member, limit, min_age_ms. A done claim.
return claim(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], tonumber(ARGV[2]),
             tonumber(ARGV[3]), false, now_ms())
