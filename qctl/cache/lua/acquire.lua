-- Take a lock, or renew it when the same owner already holds it.
-- KEYS[1]  the lock
-- ARGV[1]  the owner
-- ARGV[2]  time to live in milliseconds
-- Returns 1 when the owner holds the lock now, 0 when somebody else does.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
return 0
