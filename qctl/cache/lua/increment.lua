-- Add to a counter; a counter created by this call gets the time to live.
-- KEYS[1]  the counter
-- ARGV[1]  how much to add (an integer)
-- ARGV[2]  time to live in milliseconds for a new counter ("" = forever)
-- Returns the new value.
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if value == tonumber(ARGV[1]) and ARGV[2] ~= '' then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
