-- prune: delete one batch with its members and failed list when it matches a prune rule:
--   finished    finished_at set and before ARGV[2]
--   unfinished  finished_at unset and created_at before ARGV[2]
--   cancelled   cancelled_at set and created_at before ARGV[2]
-- The caller removes the id from the index (a separate key, in another cluster slot).
-- KEYS[1]   <namespace>:{<id>}          the batch hash
-- KEYS[2]   <namespace>:{<id>}:jobs     its members
-- KEYS[3]   <namespace>:{<id>}:failed   its failed job ids
-- ARGV[1]   the rule: finished, unfinished or cancelled
-- ARGV[2]   before, unix seconds
-- Returns 1 when deleted, 0 when kept, -1 when the batch does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2], KEYS[3])
  return -1
end
local fields = redis.call('HMGET', KEYS[1], 'created_at', 'cancelled_at', 'finished_at')
local created, cancelled, finished = tonumber(fields[1]), tonumber(fields[2] or ''), tonumber(fields[3] or '')
local before, rule = tonumber(ARGV[2]), ARGV[1]
local matches = (rule == 'finished' and finished ~= nil and finished < before)
  or (rule == 'unfinished' and finished == nil and created < before)
  or (rule == 'cancelled' and cancelled ~= nil and created < before)
if not matches then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
