-- A step that appends to no list: no lists library.
local append_item = false
