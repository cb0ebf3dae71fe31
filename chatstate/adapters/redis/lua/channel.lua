-- Channel-map operations (chatstate/channelops.py is the reference), applied to the stored
-- JSON text of a map without cjson: cjson would turn [] into {}, escape '/', print numbers
-- with 14 significant digits and big integers as floats. The map's top level is split into
-- key and value texts; a value no operation touches is copied as it was, byte for byte.
-- Integers are added exactly (any size); floats are printed so Python reads back the same
-- double; strings compare by bytes (UTF-8: code-point order), never with Lua's locale-bound
-- '<'. Malformed text raises an error (before the step writes anything).
local ch_find, ch_sub, ch_byte, ch_format = string.find, string.sub, string.byte, string.format

local function ch_is_int(t) return ch_find(t, '^-?%d+$') ~= nil end
local function ch_is_number(t) return ch_find(t, '^[-%d]') ~= nil end

-- The full parser and the rarer operations (big integers, floats, sorted lists), built on
-- first use only: Lua builds a script's functions each time it runs, and the common ``incr``
-- on a flat map (``ch_flat_incrs``) needs none of them.
local function ch_library()
    local function ch_fail(what)
        error('chatstate: the stored channel map is not valid JSON (' .. what .. ')')
    end

    -- The position after the whitespace starting at ``i``.
    local function ch_skip(s, i)
        local _, j = ch_find(s, '^[ \t\r\n]*', i)
        return j + 1
    end

    -- The position of the last character of the JSON value starting at ``i``.
    local function ch_value_end(s, i)
        local c = ch_sub(s, i, i)
        if c == '"' then
            local j = i
            while true do
                j = ch_find(s, '["\\]', j + 1)
                if not j then ch_fail('unterminated string') end
                if ch_sub(s, j, j) == '"' then return j end
                j = j + 1  -- the escaped character
            end
        elseif c == '{' or c == '[' then
            local depth, j = 0, i
            while true do
                j = ch_find(s, '[][{}"]', j)
                if not j then ch_fail('unterminated ' .. c) end
                local d = ch_sub(s, j, j)
                if d == '"' then
                    j = ch_value_end(s, j)
                elseif d == '{' or d == '[' then
                    depth = depth + 1
                else
                    depth = depth - 1
                    if depth == 0 then return j end
                end
                j = j + 1
            end
        end
        local _, j = ch_find(s, '^[^,:%]}%s]+', i)
        if not j then ch_fail('a value expected at ' .. i) end
        return j
    end

    -- The text of the JSON string ``token`` (decoded only when it holds an escape).
    local function ch_string(token)
        if ch_find(token, '\\', 1, true) then return decode(token) end
        return ch_sub(token, 2, -2)
    end

    -- The elements of the JSON array (or members of the object) ``s``, as texts: {values} for
    -- an array; {key tokens}, {values}, {key text -> position} for an object (a repeated key
    -- keeps its first place and its last value, as Python's json does).
    local function ch_split(s, object)
        local i = ch_skip(s, 1)
        local close = object and '}' or ']'
        if ch_sub(s, i, i) ~= (object and '{' or '[') then ch_fail('not an ' .. close) end
        local keys, values, index = {}, {}, {}
        i = ch_skip(s, i + 1)
        if ch_sub(s, i, i) == close then return values, keys, index end
        while true do
            local n = #values + 1
            if object then
                local e = ch_value_end(s, i)
                local token = ch_sub(s, i, e)
                local name = ch_string(token)
                i = ch_skip(s, e + 1)
                if ch_sub(s, i, i) ~= ':' then ch_fail("':' expected") end
                i = ch_skip(s, i + 1)
                if index[name] then n = index[name] else keys[n], index[name] = token, n end
            end
            local e = ch_value_end(s, i)
            values[n] = ch_sub(s, i, e)
            i = ch_skip(s, e + 1)
            local c = ch_sub(s, i, i)
            if c == close then return values, keys, index end
            if c ~= ',' then ch_fail("',' expected") end
            i = ch_skip(s, i + 1)
        end
    end

    -- -1, 0 or 1: ``a`` against ``b`` by bytes.
    local function ch_bytes(a, b)
        if a == b then return 0 end
        for i = 1, math.min(#a, #b) do
            local x, y = ch_byte(a, i), ch_byte(b, i)
            if x ~= y then return x < y and -1 or 1 end
        end
        return #a < #b and -1 or 1
    end

    -- The digits and sign of an integer's text ('-0' is 0).
    local function ch_int_parts(t)
        local negative = ch_sub(t, 1, 1) == '-'
        local digits = negative and ch_sub(t, 2) or t
        local _, z = ch_find(digits, '^0*')
        if z == #digits then return false, '0' end
        return negative, ch_sub(digits, z + 1)
    end

    -- -1, 0 or 1: magnitudes (digit strings without leading zeros).
    local function ch_magnitude(a, b)
        if #a ~= #b then return #a < #b and -1 or 1 end
        return ch_bytes(a, b)
    end

    -- -1, 0 or 1: the integers of texts ``a`` and ``b``, exactly.
    local function ch_int_compare(a, b)
        local na, da = ch_int_parts(a)
        local nb, db = ch_int_parts(b)
        if na ~= nb then return na and -1 or 1 end
        local c = ch_magnitude(da, db)
        return na and -c or c
    end

    -- The sum of the integers of texts ``a`` and ``b``, exactly, as text.
    local function ch_int_add(a, b)
        local na, da = ch_int_parts(a)
        local nb, db = ch_int_parts(b)
        local negative, sign = na, (na == nb) and 1 or -1
        if sign < 0 then
            local c = ch_magnitude(da, db)
            if c == 0 then return '0' end
            if c < 0 then da, db, negative = db, da, nb end  -- the larger magnitude first
        end
        local out, carry, i, j = {}, 0, #da, #db
        while i > 0 or j > 0 or carry ~= 0 do
            local x = (i > 0 and ch_byte(da, i) - 48 or 0)
            local y = (j > 0 and ch_byte(db, j) - 48 or 0) * sign
            local d = x + y + carry
            carry = 0
            if d < 0 then d, carry = d + 10, -1 elseif d > 9 then d, carry = d - 10, 1 end
            out[#out + 1] = d
            i, j = i - 1, j - 1
        end
        while #out > 1 and out[#out] == 0 do out[#out] = nil end
        local digits = {}
        for k = #out, 1, -1 do digits[#digits + 1] = out[k] end
        local text = table.concat(digits)
        return (negative and text ~= '0') and ('-' .. text) or text
    end


    -- A finite double as JSON text that Python reads back as the same float.
    local function ch_float(x)
        local s
        for digits = 15, 17 do
            s = ch_format('%.' .. digits .. 'g', x)
            if tonumber(s) == x then break end
        end
        if not ch_find(s, '[.en]') then s = s .. '.0' end
        return s
    end


    -- The sort key of a scalar's text: {rank, value, text, position}; nil when not a scalar.
    local function ch_scalar(t, position)
        local c = ch_sub(t, 1, 1)
        if c == 'n' then return {0, 0, t, position} end
        if c == 'f' then return {1, 0, t, position} end
        if c == 't' then return {1, 1, t, position} end
        if c == '"' then return {3, ch_string(t), t, position} end
        if c == '{' or c == '[' then return nil end
        return {2, tonumber(t), t, position}
    end

    -- -1, 0 or 1: null < false < true < numbers by value < strings by code point.
    local function ch_order(a, b)
        if a[1] ~= b[1] then return a[1] < b[1] and -1 or 1 end
        if a[1] == 3 then return ch_bytes(a[2], b[2]) end
        if a[1] == 2 and (#a[3] > 15 or #b[3] > 15) and ch_is_int(a[3]) and ch_is_int(b[3]) then
            return ch_int_compare(a[3], b[3])  -- beyond a double's exact integers
        end
        if a[2] == b[2] then return 0 end
        return a[2] < b[2] and -1 or 1
    end

    -- A stable sort's order: by scalar order, then by position.
    local function ch_before(a, b)
        local c = ch_order(a, b)
        if c ~= 0 then return c < 0 end
        return a[4] < b[4]
    end

    -- ``add`` / ``discard`` of the scalar text ``item`` on the value ``current`` (nil: absent).
    local function ch_add(op, current, item)
        local items = {}
        if current and ch_sub(current, 1, 1) == '[' then items = ch_split(current, false) end
        local wanted = ch_scalar(item, 0)
        local kept, same = {}, nil
        for n, t in ipairs(items) do
            local s = ch_scalar(t, n)
            if s then
                if ch_order(s, wanted) == 0 then same = same or s else kept[#kept + 1] = s end
            end
        end
        if op == 'add' then
            local chosen = same or wanted
            chosen[4] = #items + 1  -- appended, then sorted (stably)
            kept[#kept + 1] = chosen
            table.sort(kept, ch_before)
        end
        local texts = {}
        for n, s in ipairs(kept) do texts[n] = s[3] end
        return '[' .. table.concat(texts, ',') .. ']'
    end
    return {split = ch_split, string = ch_string, int_add = ch_int_add, float = ch_float,
            add = ch_add}
end

local ch_built = false
local function ch_more()
    if not ch_built then ch_built = ch_library() end
    return ch_built
end

-- ``incr``: the text of (the number ``current``, or 0) + ``by``; nil when not finite.
local function ch_incr(current, by)
    if not current or not ch_is_number(current) then current = '0' end
    if ch_is_int(current) and ch_is_int(by) then
        if #current < 16 and #by < 16 then  -- both below 10^15: a double adds them exactly
            return ch_format('%d', tonumber(current) + tonumber(by))
        end
        return ch_more().int_add(current, by)
    end
    local x = tonumber(current) + tonumber(by)
    if x ~= x or x == math.huge or x == -math.huge then return nil end
    return ch_more().float(x)
end

-- The fast path of ``incr`` operations on a flat map (no nested value, no escape, each key
-- once): the integer at a key is rewritten in place, a missing key appended, the rest of the
-- text untouched. nil when the text or an operation needs the full split below. It calls as
-- few string functions as it can: each costs the script about a thousand instructions.
local function ch_flat_incrs(s, at, count)
    if ch_byte(s, 1) ~= 123 or ch_byte(s, -1) ~= 125 or ch_find(s, '[', 2, true)
        or ch_find(s, '{', 2, true) or ch_find(s, '\\', 2, true) then
        return nil  -- not '{...}', or a nested value or an escape inside
    end
    for a = at, at + 3 * (count - 1), 3 do
        local token, by, value = ARGV[a + 1], ARGV[a + 2], nil
        if ARGV[a] ~= 'incr' or ch_find(token, '\\', 2, true) then return nil end
        local p, q = ch_find(s, token, 2, true)
        if not p then  -- absent
            if ch_find(ch_sub(s, -2, -2), '%s') then return nil end
            value = ch_incr(nil, by)
            if not value then return nil end
            s = ch_sub(s, 1, -2) .. (#s == 2 and '' or ',') .. token .. ':' .. value .. '}'
        else
            -- A key: the token, then ':', once only. Its first quote opens a string (valid
            -- JSON puts ':', ',', '}' or a space after a closing quote; a key that starts
            -- with one of those takes the full split), and a string followed by ':' is a key.
            local first = ch_byte(token, 2)
            if ch_byte(s, q + 1) ~= 58 or first <= 32 or first == 44 or first == 58
                or first == 125 or ch_find(s, token, q + 1, true) then
                return nil
            end
            local _, e = ch_find(s, '^-?%d+', q + 2)  -- an integer, then ',' or '}'
            local after = e and ch_byte(s, e + 1)
            if after ~= 44 and after ~= 125 then return nil end
            local current = ch_sub(s, q + 2, e)
            if #current < 16 and #by < 16 and ch_is_int(by) then
                value = ch_format('%d', current + by)  -- both below 10^15: exact
            else
                value = ch_incr(current, by)
                if not value then return nil end
            end
            s = ch_sub(s, 1, q + 1) .. value .. ch_sub(s, e + 1)
        end
    end
    return s
end

-- The map text ``stored`` (false: none) after the ``count`` operations in ARGV from
-- ``at``, each (op, key as JSON text, value text). nil and a message when a number would
-- not be finite.
local function apply_channel_ops(stored, at, count)
    local flat = ch_flat_incrs(stored or '{}', at, count)
    if flat then return flat end
    local more = ch_more()
    local values, keys, index = {}, {}, {}
    if stored then values, keys, index = more.split(stored, true) end
    for a = at, at + 3 * (count - 1), 3 do
        local op, token, value = ARGV[a], ARGV[a + 1], ARGV[a + 2]
        local name = more.string(token)
        local n = index[name]
        local current = n and values[n] or nil
        if op == 'delete' then
            if n then values[n], index[name] = false, nil end
        elseif op ~= 'discard' or current then  -- discard on a missing key does nothing
            if op == 'incr' then
                value = ch_incr(current, value)
                if not value then
                    return nil, 'incr of ' .. token .. ' gives a number out of range'
                end
            elseif op ~= 'set' then
                value = more.add(op, current, value)
            end
            if not n then
                n = #keys + 1
                keys[n], index[name] = token, n
            end
            values[n] = value
        end
    end
    local parts = {}
    for n = 1, #keys do
        if values[n] then parts[#parts + 1] = keys[n] .. ':' .. values[n] end
    end
    return '{' .. table.concat(parts, ',') .. '}'
end
