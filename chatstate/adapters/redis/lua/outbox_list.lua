-- KEYS: ob, obp. Returns {HGETALL ob, HGETALL obp}: every entry's record and payload.
return {call('HGETALL', KEYS[1]), call('HGETALL', KEYS[2])}
