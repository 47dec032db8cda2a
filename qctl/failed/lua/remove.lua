-- remove: delete failed jobs by uuid, each only when it failed before a cutoff (forget, flush, prune).
-- KEYS[1]   <base>:ids          sorted set: uuid scored by row id
-- KEYS[2]   <base>:times        sorted set: uuid scored by failed_at (unix seconds)
-- KEYS[3..] <base>:job:<uuid>   one hash per uuid in ARGV[3..], in the same order
-- ARGV[1]   cutoff, unix seconds: only records with failed_at below it go ('' = every one named)
-- ARGV[2]   marker: the payloads that contain it are returned ('' = none are)
-- ARGV[3..] uuids
-- Returns {how many were deleted, the deleted payloads that contain the marker...}.
local cutoff = ARGV[1] == '' and math.huge or tonumber(ARGV[1])
local marker = ARGV[2]
local deleted, held = 0, {}
for i = 3, #ARGV do
  local uuid, record = ARGV[i], KEYS[i]
  local score = redis.call('ZSCORE', KEYS[2], uuid)
  if score and tonumber(score) < cutoff then
    if marker ~= '' then
      local payload = redis.call('HGET', record, 'payload')
      if payload and string.find(payload, marker, 1, true) then
        held[#held + 1] = payload
      end
    end
    redis.call('DEL', record)
    redis.call('ZREM', KEYS[1], uuid)
    redis.call('ZREM', KEYS[2], uuid)
    deleted = deleted + 1
  end
end
return {deleted, unpack(held)}
