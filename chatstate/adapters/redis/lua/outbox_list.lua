-- KEYS: ob, obp. Returns {HGETALL ob, HGETALL obp}: every entry's record and payload.
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
