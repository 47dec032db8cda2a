-- record_quick: a pending member's success that crosses no line (no callback becomes due), sent in
-- the same round trip as the reserve that deletes the member's job. It grants that delete (sets the
-- permit key) only when it recorded the success; anything else (a member recorded before, unknown,
-- failed; the batch's last jobs) it leaves alone, and the job stays queued until the worker has
-- recorded it the long way (record_success.lua) and run what became due.
-- KEYS[1]   <namespace>:{<id>}          the batch hash
-- KEYS[2]   <namespace>:{<id>}:jobs     member uuid -> 'state' or 'state:callbacks'
-- KEYS[3]   <namespace>:{<id>}:failed   failed job ids
-- KEYS[4]   the permit key the queue's reserve script checks (added by the queue driver)
-- ARGV[1]   the job's uuid
-- Returns 1 when it recorded the success and set the permit, else 0.
if redis.call('HGET', KEYS[2], ARGV[1]) ~= 'pending' then
  return 0
end
local pending = tonumber(redis.call('HGET', KEYS[1], 'pending_jobs'))
if not pending or pending <= 1 or pending - redis.call('LLEN', KEYS[3]) <= 1 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], 'ok')
redis.call('HSET', KEYS[1], 'pending_jobs', pending - 1)
redis.call('SET', KEYS[4], 1, 'PX', 60000)
return 1
