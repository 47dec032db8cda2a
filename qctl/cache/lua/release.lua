-- Drop a lock only if the owner still holds it (compare-and-delete).
-- KEYS[1]  the lock
-- ARGV[1]  the owner
-- Returns 1 when the lock was dropped, 0 when it was gone or held by somebody else.
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
