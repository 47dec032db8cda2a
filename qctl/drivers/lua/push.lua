-- push: make one job ready at the tail of its queue and leave a wake-up token for blocked workers.
-- KEYS[1] queues:<q>          ready list
-- KEYS[2] queues:<q>:notify   wake-up list
-- ARGV[1] payload             stored byte for byte, never decoded
-- Returns the length of the ready list.
redis.call('RPUSH', KEYS[2], 1)
return redis.call('RPUSH', KEYS[1], ARGV[1])
