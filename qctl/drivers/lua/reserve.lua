-- reserve: take the next job from the first of the given queues that has one (priority order),
-- after optionally deleting the caller's finished job, so a busy worker settles one job and
-- reserves the next in a single round trip.
-- For each queue in turn: due delayed jobs move to the tail of its ready list; a job whose
-- lease expired is taken back in place (reclaimed); else the head of the ready list is popped.
-- Payload bytes are moved, never decoded, so no entry can make this script fail half-way.
-- Attempts live outside the payload, in queues:<q>:attempts keyed by the payload's sha1.
-- KEYS[1]   finished job's queues:<q>:reserved   } only when ARGV[3] ~= ''
-- KEYS[2]   finished job's queues:<q>:attempts   }
-- KEYS[3]   a permit key                         only when ARGV[5] == '1': the finished job is deleted
--           only if this key exists (it is deleted too); a script the caller ran just before, in the
--           same round trip, sets it once it did what had to happen before the job may go
-- then 5 keys per queue, in priority order:
--           queues:<q>, queues:<q>:delayed, queues:<q>:reserved, queues:<q>:notify, queues:<q>:attempts
-- ARGV[1]   token: 16 hex characters naming the new reservation
-- ARGV[2]   retry_after: lease length in seconds; '' = leases never expire
-- ARGV[3]   the finished job's reservation token, '' when there is none
-- ARGV[4]   the finished job's payload
-- ARGV[5]   '1' when KEYS[3] is a permit key, else '' or absent
-- Returns {queue number (1-based), payload, attempts, reclaimed (0/1)}
--      or {0, seconds until the next delayed job is due or lease expires ('' = nothing pending)},
--      having then dropped the queues' wake-up tokens (no job is behind them).
local TOKENED = '^' .. string.rep('%x', 16) .. ':'
local MIGRATE_LIMIT = 100

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local token, retry_after = ARGV[1], tonumber(ARGV[2])

local function strip(member)
  if string.find(member, TOKENED) then
    return string.sub(member, 18)
  end
  return member
end

local function migrate_due(ready, delayed, notify)
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, MIGRATE_LIMIT)
  if #due == 0 then
    return
  end
  local wakeups = {}
  for i = 1, #due do
    due[i] = strip(due[i])
    wakeups[i] = 1
  end
  redis.call('RPUSH', ready, unpack(due))
  redis.call('RPUSH', notify, unpack(wakeups))
  -- the range started at -inf, so the entries found hold the lowest ranks
  redis.call('ZREMRANGEBYRANK', delayed, 0, #due - 1)
end

local function take(ready, reserved, notify)
  if retry_after then
    local expired = redis.call('ZRANGEBYSCORE', reserved, '-inf', now, 'LIMIT', 0, 1)
    if #expired > 0 then
      redis.call('ZREM', reserved, expired[1])
      return strip(expired[1]), 1
    end
  end
  local payload = redis.call('LPOP', ready)
  if not payload then
    return nil, 0
  end
  -- one wake-up token goes with each ready job taken, so tokens cannot pile up while workers are
  -- busy. A blocked worker is never left without one: Redis hands a token to a blocked worker the
  -- moment it is pushed, so tokens only wait in the list while no worker is blocked on it.
  redis.call('LPOP', notify)
  return payload, 0
end

local first = 1
if ARGV[3] ~= '' then
  first = 3
  local permitted = true
  if ARGV[5] == '1' then
    permitted = redis.call('DEL', KEYS[3]) == 1
    first = 4
  end
  if permitted and redis.call('ZREM', KEYS[1], ARGV[3] .. ':' .. ARGV[4]) == 1 then
    redis.call('HDEL', KEYS[2], redis.sha1hex(ARGV[4]))
  end
end

local queues = (#KEYS - first + 1) / 5
for q = 0, queues - 1 do
  local k = first + q * 5
  migrate_due(KEYS[k], KEYS[k + 1], KEYS[k + 3])
  local payload, reclaimed = take(KEYS[k], KEYS[k + 2], KEYS[k + 3])
  if payload then
    local expiry = '+inf'
    if retry_after then
      expiry = now + retry_after
    end
    local attempts = redis.call('HINCRBY', KEYS[k + 4], redis.sha1hex(payload), 1)
    redis.call('ZADD', KEYS[k + 2], expiry, token .. ':' .. payload)
    return {q + 1, payload, attempts, reclaimed}
  end
end

-- nothing to take: say how long a worker may block before something falls due
local next_due = nil
local function note_head(key)
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #head > 0 then
    local due = tonumber(head[2]) - now
    if next_due == nil or due < next_due then
      next_due = due
    end
  end
end
for q = 0, queues - 1 do
  local k = first + q * 5
  note_head(KEYS[k + 1])
  if retry_after then
    note_head(KEYS[k + 2])
  end
  -- nothing is ready, so no token has a job behind it (delayed pushes leave some)
  redis.call('DEL', KEYS[k + 3])
end
if next_due == nil then
  return {0, ''}
end
return {0, tostring(next_due)}
