-- cancel: cancelled_at = now (and finished_at = now if unset); nothing when already cancelled
-- or when the batch does not exist.
-- KEYS[1]   <namespace>:{<id>}   the batch hash
-- ARGV[1]   now, unix seconds
-- Returns 1 when it cancelled the batch, else 0.
if redis.call('EXISTS', KEYS[1]) == 0 or (redis.call('HGET', KEYS[1], 'cancelled_at') or '') ~= '' then
  return 0
end
redis.call('HSET', KEYS[1], 'cancelled_at', ARGV[1])
if (redis.call('HGET', KEYS[1], 'finished_at') or '') == '' then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[1])
end
return 1
