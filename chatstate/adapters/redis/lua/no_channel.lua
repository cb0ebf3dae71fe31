-- A step that stages no channel operation: no channel library.
local apply_channel_ops = false
