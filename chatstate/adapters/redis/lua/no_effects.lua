-- A step with nothing staged besides the state and the claim: no effects library.
local prepare_effects, write_effects, remove_taken = false, false, false
