-- queue_sizes: one queue's jobs by state, read-only (creates no key), for `status` and `monitor`.
-- KEYS[1] queues:<q>          ready list (pushed at the tail, reserved from the head)
-- KEYS[2] queues:<q>:delayed  sorted set of "<token>:<payload>" by due time
-- KEYS[3] queues:<q>:reserved sorted set of "<token>:<payload>" by lease expiry ('+inf': none)
-- Returns {ready list length, delayed not yet due, delayed already due (moved to ready by the
--          next reserve), reserved with a live lease, reserved whose lease lapsed, now,
--          due time of the oldest due delayed job or '', pushedAt of the ready list's head or ''}.
-- The head's pushedAt is the last top-level-looking "pushedAt" in it (the envelope writes it
-- after `data`); it is when the job was first pushed, not when it became ready.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ready = redis.call('LLEN', KEYS[1])
local due = redis.call('ZCOUNT', KEYS[2], '-inf', now)
local later = redis.call('ZCARD', KEYS[2]) - due
local lapsed = redis.call('ZCOUNT', KEYS[3], '-inf', now)
local held = redis.call('ZCARD', KEYS[3]) - lapsed
local oldest_due = ''
if due > 0 then
  oldest_due = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
end
local pushed = ''
if ready > 0 then
  local head = redis.call('LINDEX', KEYS[1], 0)
  for value in string.gmatch(head, '"pushedAt"%s*:%s*"([%d%.]+)"') do
    pushed = value
  end
end
return {ready, later, due, held, lapsed, string.format('%.6f', now), oldest_due, pushed}
