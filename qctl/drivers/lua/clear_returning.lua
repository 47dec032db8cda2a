-- clear_returning: as clear.lua, and hand back the removed payloads that contain a marker
-- (a unique job's lock, which the caller then releases).
-- KEYS[1..5] as clear.lua
-- ARGV[1]    the marker (a plain substring, no pattern)
-- Returns {ready, delayed, reserved, payload, payload, ...}: the jobs removed by state, as
-- queue_sizes.lua counts them (a due delayed job and a lapsed lease are ready).
local marker = ARGV[1]
local found = {0, 0, 0}
local function keep(payload)
  if string.find(payload, marker, 1, true) then
    found[#found + 1] = payload
  end
end
for _, payload in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  keep(payload)
end
for i = 2, 3 do  -- delayed and reserved members are '<16 hex token>:<payload>'
  for _, member in ipairs(redis.call('ZRANGE', KEYS[i], 0, -1)) do
    keep(string.sub(member, 18))
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local due = redis.call('ZCOUNT', KEYS[2], '-inf', now)
local lapsed = redis.call('ZCOUNT', KEYS[3], '-inf', now)
found[1] = redis.call('LLEN', KEYS[1]) + due + lapsed
found[2] = redis.call('ZCARD', KEYS[2]) - due
found[3] = redis.call('ZCARD', KEYS[3]) - lapsed
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return found
