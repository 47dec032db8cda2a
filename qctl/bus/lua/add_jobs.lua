-- add_jobs: register the uuids that are not members yet (state pending); total_jobs and
-- pending_jobs grow by that many and finished_at is cleared (nothing changes when none is new).
-- KEYS[1]   <namespace>:{<id>}        the batch hash
-- KEYS[2]   <namespace>:{<id>}:jobs   member uuid -> 'state' or 'state:callbacks'
-- ARGV      the job uuids, in order
-- Returns the uuids that were new, in order; nil when the batch does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local new = {}
for i = 1, #ARGV do
  if redis.call('HSETNX', KEYS[2], ARGV[i], 'pending') == 1 then
    new[#new + 1] = ARGV[i]
  end
end
if #new > 0 then
  redis.call('HINCRBY', KEYS[1], 'total_jobs', #new)
  redis.call('HINCRBY', KEYS[1], 'pending_jobs', #new)
  redis.call('HSET', KEYS[1], 'finished_at', '')
end
return new
