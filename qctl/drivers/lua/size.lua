-- size: jobs of one queue, counted as Laravel does: ready + delayed + reserved.
-- KEYS[1] queues:<q>          ready list
-- KEYS[2] queues:<q>:delayed  sorted set
-- KEYS[3] queues:<q>:reserved sorted set
-- Returns the sum.
return redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3])
