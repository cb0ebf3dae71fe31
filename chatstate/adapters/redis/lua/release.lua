-- KEYS: locks, q, qkeys. ARGV: key, owner ('' to force), only_if_idle ('1'), pending_ttl_ms|''.
-- A key held by slots: ``owner``'s slot is released (``lua/slots.lua``); forced, all of them.
local now = now_ms()
local released = release(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3] == '1',
                         tonumber(ARGV[4]), now)
if released[1] ~= 3 then return released end
-- @slots
local held = decode(call('HGET', KEYS[1], ARGV[1]))
return slot_functions().release(KEYS[1], KEYS[2], KEYS[3], ARGV[1], held, ARGV[2],
                                ARGV[3] == '1', tonumber(ARGV[4]), now)
