-- clear: delete every key of one queue and say how many jobs went with them.
-- KEYS[1] queues:<q>          ready list
-- KEYS[2] queues:<q>:delayed  sorted set
-- KEYS[3] queues:<q>:reserved sorted set
-- KEYS[4] queues:<q>:notify   wake-up list
-- KEYS[5] queues:<q>:attempts hash
-- Returns the number of jobs removed (ready + delayed + reserved).
local size = redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return size
