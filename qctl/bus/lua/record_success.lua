-- record_success: a member job succeeded. Counters change only when its state does (pending or
-- failed -> ok), so a redelivered job is never counted twice. A failed member succeeding is a
-- retry: it leaves the failed list and pending_jobs drops; failed_jobs stays as it was.
-- The callbacks that became due are stored on this member with those it still owed:
--   then    pending_jobs reached 0 (finished_at = now too)
--   finally pending_jobs - #failed list reached 0
-- KEYS[1]   <namespace>:{<id>}          the batch hash
-- KEYS[2]   <namespace>:{<id>}:jobs     member uuid -> 'state' or 'state:callbacks'
-- KEYS[3]   <namespace>:{<id>}:failed   failed job ids, in failure order
-- ARGV[1]   the job's uuid
-- ARGV[2]   now, unix seconds
-- Returns {known (0/1), fresh (0/1), pending_jobs, failed_jobs, due callbacks ('then,finally' or '')}.
local KINDS = {'then', 'catch', 'finally'}

local member = redis.call('HGET', KEYS[2], ARGV[1])
if not member or redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 0, 0, 0, ''}
end
local state, owed = string.match(member, '^([^:]*):?(.*)$')
local pending = tonumber(redis.call('HGET', KEYS[1], 'pending_jobs'))
local failed = tonumber(redis.call('HGET', KEYS[1], 'failed_jobs'))
if state ~= 'pending' and state ~= 'failed' then
  return {1, 0, pending, failed, owed}
end

local not_run_before = pending - redis.call('LLEN', KEYS[3])
local pending_before = pending
if state == 'failed' then
  redis.call('LREM', KEYS[3], 0, ARGV[1])
end
pending = math.max(pending - 1, 0)
local not_run = pending - redis.call('LLEN', KEYS[3])
redis.call('HSET', KEYS[1], 'pending_jobs', pending)

local due = {}
for kind in string.gmatch(owed, '[^,]+') do
  due[kind] = true
end
if pending_before > 0 and pending <= 0 then
  due['then'] = true
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[2])
end
if not_run_before > 0 and not_run <= 0 then
  due['finally'] = true
end
local listed = {}
for _, kind in ipairs(KINDS) do
  if due[kind] then
    listed[#listed + 1] = kind
  end
end
local callbacks = table.concat(listed, ',')
redis.call('HSET', KEYS[2], ARGV[1], callbacks == '' and 'ok' or ('ok:' .. callbacks))
return {1, 1, pending, failed, callbacks}
