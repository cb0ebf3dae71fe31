-- Capped lists: ``l:<key>`` holds the items (JSON texts), oldest first; Redis expires it
-- itself. The index ``lkeys`` scores each list key by its expiry (ms; 'inf': none), so that
-- prune drops the keys of expired lists without reading the others.

-- Append ``value`` to the list ``lkey`` (``key`` in the index) as its newest item, keep its
-- newest ``max_length`` items (nil: all) and renew its expiry to ``ttl`` ms from now (nil:
-- left as it is; a list that starts over has none).
local function append_item(lkeys, lkey, key, value, max_length, ttl, now)
    local length = call('RPUSH', lkey, value)
    if max_length and length > max_length then call('LTRIM', lkey, -max_length, -1) end
    if ttl then
        call('PEXPIRE', lkey, ttl)
        call('ZADD', lkeys, now + ttl, key)
    elseif length == 1 then
        call('ZADD', lkeys, 'inf', key)
    end
end
