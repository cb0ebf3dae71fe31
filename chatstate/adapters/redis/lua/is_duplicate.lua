-- KEYS: dd, ddc, locks. ARGV: member. Returns 1 when the member makes its message a duplicate.
if not call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if holds(KEYS[2], KEYS[3], ARGV[1], now_ms()) then return 1 end
return 0
