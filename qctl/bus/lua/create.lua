-- create: store a new batch with no jobs yet, unless one with this id exists.
-- KEYS[1]   <namespace>:{<id>}   the batch hash
-- ARGV[1]   id
-- ARGV[2]   name
-- ARGV[3]   options, JSON text
-- ARGV[4]   allow_failures: '1' or '0'
-- ARGV[5]   created_at, unix seconds
-- Returns 1 when created, 0 when the batch existed already (then nothing is changed).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1],
  'id', ARGV[1], 'name', ARGV[2], 'total_jobs', 0, 'pending_jobs', 0, 'failed_jobs', 0,
  'options', ARGV[3], 'allow_failures', ARGV[4], 'created_at', ARGV[5],
  'cancelled_at', '', 'finished_at', '')
return 1
