-- delete_push: remove a reserved job and push the jobs that follow it (a chain's next link), both
-- or neither, only while the caller still holds the reservation.
-- KEYS[1] queues:<q>:reserved sorted set of "<token>:<payload>" by lease expiry
-- KEYS[2] queues:<q>:attempts hash, field = sha1 of the payload
-- then 3 keys per job pushed, in order:
--         queues:<t> (ready list), queues:<t>:delayed (sorted set), queues:<t>:notify (wake-up list)
-- ARGV[1] token               the caller's reservation token
-- ARGV[2] payload             the reserved payload
-- then 3 values per job pushed: payload, delay (seconds; 0 = ready now), token of its delayed
--         entry (16 hex characters; '' when not delayed)
-- Returns 1 when deleted and pushed, 0 when the reservation was lost (nothing pushed).
if redis.call('ZREM', KEYS[1], ARGV[1] .. ':' .. ARGV[2]) == 0 then
  return 0
end
redis.call('HDEL', KEYS[2], redis.sha1hex(ARGV[2]))

local now = nil
for i = 0, (#KEYS - 2) / 3 - 1 do
  local k, a = 3 + i * 3, 3 + i * 3
  local delay = tonumber(ARGV[a + 1])
  if delay > 0 then
    if now == nil then
      local t = redis.call('TIME')
      now = tonumber(t[1]) + tonumber(t[2]) / 1000000
    end
    redis.call('ZADD', KEYS[k + 1], now + delay, ARGV[a + 2] .. ':' .. ARGV[a])
  else
    redis.call('RPUSH', KEYS[k], ARGV[a])
  end
  redis.call('RPUSH', KEYS[k + 2], 1)
end
return 1
