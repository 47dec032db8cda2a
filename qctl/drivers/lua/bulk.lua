-- bulk: push a chunk of jobs in one call, all or none, each queue's jobs in the order given.
-- KEYS 3 per queue, queue n (1-based) at 3n-2 .. 3n:
--      queues:<q> (ready list), queues:<q>:delayed (sorted set), queues:<q>:notify (wake-up list)
-- ARGV per queue, in the order of KEYS: r (ready jobs), d (delayed jobs), then r payloads, then d
--      pairs of delay (seconds) and member ("<16 hex token>:<payload>", so identical payloads never
--      collapse into one)
-- At most a few thousand jobs a call (the ready payloads of a queue go to one RPUSH through unpack).
-- Returns the number of jobs pushed. A key of the wrong type fails the call before anything is written.
local KINDS = {'list', 'zset', 'list'}
for k = 1, #KEYS do
  local kind = redis.call('TYPE', KEYS[k])['ok']
  if kind ~= 'none' and kind ~= KINDS[(k - 1) % 3 + 1] then
    return redis.error_reply('WRONGTYPE ' .. KEYS[k] .. ' holds a ' .. kind .. ', not a ' .. KINDS[(k - 1) % 3 + 1])
  end
end

local now = nil
local a, pushed = 1, 0
for q = 1, #KEYS / 3 do
  local ready, delayed = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  if ready > 0 then
    redis.call('RPUSH', KEYS[3 * q - 2], unpack(ARGV, a, a + ready - 1))
    a = a + ready
  end
  if delayed > 0 and now == nil then
    local t = redis.call('TIME')
    now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  end
  for _ = 1, delayed do
    redis.call('ZADD', KEYS[3 * q - 1], now + tonumber(ARGV[a]), ARGV[a + 1])
    a = a + 2
  end
  local ones = {}
  for i = 1, ready + delayed do
    ones[i] = 1
  end
  redis.call('RPUSH', KEYS[3 * q], unpack(ones))
  pushed = pushed + ready + delayed
end
return pushed
