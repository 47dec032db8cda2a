-- callback_done: a member ran its due callback; it is no longer due (no member: nothing).
-- KEYS[1]   <namespace>:{<id>}:jobs   member uuid -> 'state' or 'state:callbacks'
-- ARGV[1]   the job's uuid
-- ARGV[2]   the callback kind: then, catch or finally
-- Returns 1 when the kind was due on the member, else 0.
local member = redis.call('HGET', KEYS[1], ARGV[1])
if not member then
  return 0
end
local state, owed = string.match(member, '^([^:]*):?(.*)$')
local left, found = {}, 0
for kind in string.gmatch(owed, '[^,]+') do
  if kind == ARGV[2] then
    found = 1
  else
    left[#left + 1] = kind
  end
end
if found == 1 then
  local callbacks = table.concat(left, ',')
  redis.call('HSET', KEYS[1], ARGV[1], callbacks == '' and state or (state .. ':' .. callbacks))
end
return found
