-- log: record a failed job once per uuid; a second call for the same uuid changes nothing.
-- KEYS[1]   <base>:job:<uuid>   hash: id, connection, queue, payload, exception, failed_at
-- KEYS[2]   <base>:ids          sorted set: uuid scored by row id
-- KEYS[3]   <base>:times        sorted set: uuid scored by failed_at (unix seconds)
-- KEYS[4]   <base>:seq          the last row id handed out
-- ARGV[1]   uuid
-- ARGV[2]   connection
-- ARGV[3]   queue
-- ARGV[4]   payload (bytes, stored unchanged)
-- ARGV[5]   exception text
-- Returns the record's row id (the first one when the uuid was recorded before).
local existing = redis.call('HGET', KEYS[1], 'id')
if existing then
  return tonumber(existing)
end
local now = redis.call('TIME')
local failed_at = string.format('%d.%06d', tonumber(now[1]), tonumber(now[2]))
local id = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], 'id', id, 'connection', ARGV[2], 'queue', ARGV[3], 'payload', ARGV[4],
  'exception', ARGV[5], 'failed_at', failed_at)
redis.call('ZADD', KEYS[2], id, ARGV[1])
redis.call('ZADD', KEYS[3], failed_at, ARGV[1])
return id
