-- Count one hit against a bucketed sliding window if it fits (qctl/cache/limits.py, same window).
-- KEYS[1]  the limiter: a hash of bucket number -> hits counted in that bucket, plus
--          's' (the hits in the buckets kept), 'l' (the oldest bucket kept), 'n' (the newest)
-- ARGV[1]  the limit: hits allowed per period
-- ARGV[2]  the period in microseconds
-- ARGV[3]  buckets per period (K); a hit is allowed while buckets b-K..b hold fewer than the limit
-- Returns {1 allowed | 0 denied, hits remaining, microseconds until one more hit fits}.
-- Time is the server's own (TIME), so every client shares one clock; Redis 7 replicates the effects.
-- The running sum makes a hit cost the same however many buckets are live: a bucket is read once
-- more only when it leaves the window, and all of them only on a refusal (for the retry time).
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local k = tonumber(ARGV[3])
local width = period / k
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local current = math.floor(now / width)
local oldest = current - k

local function field(bucket)
    return string.format('%.0f', bucket)  -- never 3.4e+10
end

local meta = redis.call('HMGET', KEYS[1], 's', 'l', 'n')
local used, low, newest = tonumber(meta[1]) or 0, tonumber(meta[2]), tonumber(meta[3])
if low == nil or newest == nil or newest < oldest or newest - low > 4 * k then
    -- nothing kept, all of it out of the window, or a clock that jumped: start afresh
    redis.call('DEL', KEYS[1])
    used, low, newest = 0, oldest, current
elseif low < oldest then
    local leaving = {}
    for bucket = low, oldest - 1 do
        leaving[#leaving + 1] = field(bucket)
    end
    for _, hits in ipairs(redis.call('HMGET', KEYS[1], unpack(leaving))) do
        used = used - (tonumber(hits) or 0)
    end
    redis.call('HDEL', KEYS[1], unpack(leaving))
    low = oldest
end

local function retry_after(total)
    local kept = {}
    for bucket = low, newest do
        kept[#kept + 1] = field(bucket)
    end
    local counts = redis.call('HMGET', KEYS[1], unpack(kept))
    for i, hits in ipairs(counts) do
        total = total - (tonumber(hits) or 0)
        if total < limit then
            return math.max(0, math.ceil((low + i - 1 + k + 1) * width - now))
        end
    end
    return 0
end

if used >= limit then
    redis.call('HSET', KEYS[1], 's', used, 'l', field(low), 'n', field(newest))
    return {0, 0, retry_after(used)}
end
redis.call('HINCRBY', KEYS[1], field(current), 1)
low, newest = math.min(low, current), math.max(newest, current)
redis.call('HSET', KEYS[1], 's', used + 1, 'l', field(low), 'n', field(newest))
redis.call('PEXPIRE', KEYS[1], math.ceil(period * (k + 2) / k / 1000))
local remaining = limit - used - 1
if remaining > 0 then
    return {1, remaining, 0}
end
return {1, 0, retry_after(used + 1)}
