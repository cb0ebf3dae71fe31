-- One page of a frozen hash in id order. KEYS: the ids zset, the hash[, a second hash with
-- the same fields]. ARGV: start, stop. Returns {ids, values[, the second hash's values]}.
local ids = call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])
local page = {ids}
for k = 2, #KEYS do
    page[k] = #ids > 0 and call('HMGET', KEYS[k], unpack(ids)) or {}
end
return page
