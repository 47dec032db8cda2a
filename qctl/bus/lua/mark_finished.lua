-- mark_finished: finished_at = now, when the batch exists (a batch of zero jobs finishes as it
-- is dispatched).
-- KEYS[1]   <namespace>:{<id>}   the batch hash
-- ARGV[1]   now, unix seconds
-- Returns 1 when the batch exists, else 0.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'finished_at', ARGV[1])
return 1
