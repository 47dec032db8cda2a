-- renew: push a running job's lease expiry forward, only while the caller still holds it.
-- KEYS[1] queues:<q>:reserved sorted set of "<token>:<payload>" by lease expiry
-- ARGV[1] token               the caller's reservation token
-- ARGV[2] payload             the reserved payload
-- ARGV[3] retry_after         seconds from now; '' when leases never expire
-- Returns 1 when renewed, 0 when the reservation was lost.
local member = ARGV[1] .. ':' .. ARGV[2]
if not redis.call('ZSCORE', KEYS[1], member) then
  return 0
end
if ARGV[3] ~= '' then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[1], 'XX', tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[3]), member)
end
return 1
