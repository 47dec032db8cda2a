-- delete: remove a reserved job, but only while the caller still holds its reservation.
-- KEYS[1] queues:<q>:reserved sorted set, score = lease expiry, member = "<token>:<payload>"
-- KEYS[2] queues:<q>:attempts hash, field = sha1 of the payload, value = reservations so far
-- ARGV[1] token               the caller's reservation token
-- ARGV[2] payload             the reserved payload
-- Returns 1 when deleted, 0 when the reservation was lost (expired and taken by another worker).
if redis.call('ZREM', KEYS[1], ARGV[1] .. ':' .. ARGV[2]) == 0 then
  return 0
end
redis.call('HDEL', KEYS[2], redis.sha1hex(ARGV[2]))
return 1
