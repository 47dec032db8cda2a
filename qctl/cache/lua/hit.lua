-- Count one hit against a bucketed sliding window if it fits (qctl/cache/limits.py, same arithmetic).
-- KEYS[1]  the limiter: a hash of bucket number -> hits counted in that bucket
-- ARGV[1]  the limit: hits allowed per period
-- ARGV[2]  the period in microseconds
-- ARGV[3]  buckets per period (K); a hit is allowed while buckets b-K..b hold fewer than the limit
-- Returns {1 allowed | 0 denied, hits remaining, microseconds until one more hit fits}.
-- Time is the server's own (TIME), so every client shares one clock; Redis 7 replicates the effects.
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local k = tonumber(ARGV[3])
local width = period / k
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local current = math.floor(now / width)

-- Buckets up to K ahead still count (a period's worth of leeway); anything else is stale.
local flat = redis.call('HGETALL', KEYS[1])
local live, stale, used = {}, {}, 0
for i = 1, #flat, 2 do
    local bucket, hits = tonumber(flat[i]), tonumber(flat[i + 1])
    if bucket < current - k or bucket > current + k then
        stale[#stale + 1] = flat[i]
    else
        live[bucket] = hits
        used = used + hits
    end
end
if #stale > 0 then
    redis.call('HDEL', KEYS[1], unpack(stale))
end

local function retry_after(total)
    local buckets = {}
    for bucket in pairs(live) do
        buckets[#buckets + 1] = bucket
    end
    table.sort(buckets)
    for _, bucket in ipairs(buckets) do
        total = total - live[bucket]
        if total < limit then
            return math.max(0, math.ceil((bucket + k + 1) * width - now))
        end
    end
    return 0
end

if used >= limit then
    return {0, 0, retry_after(used)}
end
live[current] = (live[current] or 0) + 1
redis.call('HINCRBY', KEYS[1], string.format('%.0f', current), 1)  -- never 3.4e+10
redis.call('PEXPIRE', KEYS[1], math.ceil(period * (k + 2) / k / 1000))
local remaining = limit - used - 1
if remaining > 0 then
    return {1, remaining, 0}
end
return {1, 0, retry_after(used + 1)}
