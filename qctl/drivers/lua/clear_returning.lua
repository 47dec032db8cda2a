-- clear_returning: as clear.lua, and hand back the removed payloads that contain a marker
-- (a unique job's lock, which the caller then releases).
-- KEYS[1..5] as clear.lua
-- ARGV[1]    the marker (a plain substring, no pattern)
-- Returns {number of jobs removed, payload, payload, ...}.
local marker = ARGV[1]
local found = {0}
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
found[1] = redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return found
