-- later: store one job that becomes ready after a delay, timed on the server's clock.
-- KEYS[1] queues:<q>:delayed  sorted set, score = unix time the job becomes due
-- KEYS[2] queues:<q>:notify   wake-up list (a blocked worker wakes and shortens its wait to the due time)
-- ARGV[1] member              "<16 hex token>:<payload>", so identical payloads never collapse into one
-- ARGV[2] delay               seconds, may be fractional
-- Returns 1.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('RPUSH', KEYS[2], 1)
return 1
