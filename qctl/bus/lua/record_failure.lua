-- record_failure: a member job failed for good (pending -> failed; any other state: nothing
-- changes). failed_jobs grows, its uuid joins the failed list; the later links of its chain that
-- are still pending become skipped, each taking one off pending_jobs. The first failure of a
-- batch without allowFailures cancels it (cancelled_at = now, finished_at = now if unset).
-- The callbacks that became due are stored on this member:
--   catch   failed_jobs went from 0 to 1
--   finally pending_jobs - #failed list reached 0
-- KEYS[1]   <namespace>:{<id>}          the batch hash
-- KEYS[2]   <namespace>:{<id>}:jobs     member uuid -> 'state' or 'state:callbacks'
-- KEYS[3]   <namespace>:{<id>}:failed   failed job ids, in failure order
-- ARGV[1]   the job's uuid
-- ARGV[2]   now, unix seconds
-- ARGV[3…]  uuids of later links of its chain, to skip
-- Returns {known (0/1), fresh (0/1), pending_jobs, failed_jobs, due callbacks ('catch,finally' or '')}.
local member = redis.call('HGET', KEYS[2], ARGV[1])
if not member or redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 0, 0, 0, ''}
end
local state, owed = string.match(member, '^([^:]*):?(.*)$')
local pending = tonumber(redis.call('HGET', KEYS[1], 'pending_jobs'))
local failed = tonumber(redis.call('HGET', KEYS[1], 'failed_jobs'))
if state ~= 'pending' then
  return {1, 0, pending, failed, owed}
end

local not_run_before = pending - redis.call('LLEN', KEYS[3])
redis.call('RPUSH', KEYS[3], ARGV[1])
for i = 3, #ARGV do
  if ARGV[i] ~= ARGV[1] and redis.call('HGET', KEYS[2], ARGV[i]) == 'pending' then
    redis.call('HSET', KEYS[2], ARGV[i], 'skipped')
    pending = pending - 1
  end
end
pending = math.max(pending, 0)
failed = failed + 1
local not_run = pending - redis.call('LLEN', KEYS[3])
redis.call('HSET', KEYS[1], 'pending_jobs', pending, 'failed_jobs', failed)

local catch = failed == 1
if catch and redis.call('HGET', KEYS[1], 'allow_failures') ~= '1'
    and (redis.call('HGET', KEYS[1], 'cancelled_at') or '') == '' then
  redis.call('HSET', KEYS[1], 'cancelled_at', ARGV[2])
  if (redis.call('HGET', KEYS[1], 'finished_at') or '') == '' then
    redis.call('HSET', KEYS[1], 'finished_at', ARGV[2])
  end
end
local listed = {}
if catch then
  listed[#listed + 1] = 'catch'
end
if not_run_before > 0 and not_run <= 0 then
  listed[#listed + 1] = 'finally'
end
local callbacks = table.concat(listed, ',')
redis.call('HSET', KEYS[2], ARGV[1], callbacks == '' and 'failed' or ('failed:' .. callbacks))
return {1, 1, pending, failed, callbacks}
