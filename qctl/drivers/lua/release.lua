-- release: put a reserved job back (now, or after a delay), only while the caller still holds it.
-- A stale holder adds nothing, so a late release can never duplicate a job (Laravel's unfenced ZADD).
-- KEYS[1] queues:<q>:reserved sorted set of "<token>:<payload>" by lease expiry
-- KEYS[2] queues:<q>:delayed  sorted set of "<token>:<payload>" by due time
-- KEYS[3] queues:<q>          ready list
-- KEYS[4] queues:<q>:notify   wake-up list
-- ARGV[1] token               the caller's reservation token
-- ARGV[2] payload             the reserved payload (its attempts stay in queues:<q>:attempts)
-- ARGV[3] delay               seconds; 0 puts it at the tail of the ready list
-- Returns 1 when released, 0 when the reservation was lost.
local member = ARGV[1] .. ':' .. ARGV[2]
if redis.call('ZREM', KEYS[1], member) == 0 then
  return 0
end
local delay = tonumber(ARGV[3])
if delay <= 0 then
  redis.call('RPUSH', KEYS[3], ARGV[2])
  redis.call('RPUSH', KEYS[4], 1)
else
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], tonumber(t[1]) + tonumber(t[2]) / 1000000 + delay, member)
end
return 1
