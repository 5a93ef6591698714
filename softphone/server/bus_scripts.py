"""The bus's Lua scripts (server/bus.py): each one atomic step, timed by Redis' own clock.

Keys are built inside the scripts (one Redis, not Redis Cluster). Prefix `sp:`.
"""

PUBLISH = """
local maxlen = ARGV[1]
local seqs = {}
for i = 2, #ARGV, 2 do
  local sub = ARGV[i]
  if redis.call('SISMEMBER', 'sp:lost', sub) == 1 then
    seqs[#seqs + 1] = 0
  else
    local seq = redis.call('INCR', 'sp:seq:' .. sub)
    redis.call('XADD', 'sp:st:' .. sub, 'MAXLEN', maxlen, seq .. '-0', 'd', ARGV[i + 1])
    redis.call('PUBLISH', 'sp:ch:' .. sub, 'N' .. seq .. ' ' .. ARGV[i + 1])
    seqs[#seqs + 1] = seq
  end
end
return seqs
"""

NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Heartbeat of the devices this process holds (and the moment one detaches): ARGV = subs.
# Returns those already declared lost (by a process that did not see this heartbeat in time).
SEEN = (
    NOW_MS
    + """
local lost = {}
for i = 1, #ARGV do
  if redis.call('SISMEMBER', 'sp:lost', ARGV[i]) == 1 then
    lost[#lost + 1] = ARGV[i]
  else
    redis.call('ZADD', 'sp:seen', now, ARGV[i])
  end
end
return lost
"""
)

# Devices not seen for ARGV[1] ms: each is claimed by exactly one caller, marked lost and its
# stream dropped (a lost device cannot resume: its next hello gets resume_failed).
CLAIM_LOST = (
    NOW_MS
    + """
local subs = redis.call('ZRANGEBYSCORE', 'sp:seen', '-inf', now - tonumber(ARGV[1]),
                        'LIMIT', 0, 100)
for _, sub in ipairs(subs) do
  redis.call('ZREM', 'sp:seen', sub)
  redis.call('SADD', 'sp:lost', sub)
  redis.call('DEL', 'sp:st:' .. sub)
  -- Ending the device's calls is a timer due now, so it is leased like any other.
  redis.call('ZADD', 'sp:timers', now, 'lost:' .. sub)
end
return subs
"""
)

ARM = (
    NOW_MS
    + """
redis.call('ZADD', 'sp:timers', now + tonumber(ARGV[2]), ARGV[1])
return now
"""
)

# Done with a leased timer: remove it unless it was armed again meanwhile (another score).
DONE = """
if redis.call('ZSCORE', 'sp:timers', ARGV[1]) == ARGV[2] then
  redis.call('ZREM', 'sp:timers', ARGV[1])
end
return 1
"""

CLAIM_DUE = (
    NOW_MS
    + """
-- Each due timer is leased for ARGV[1] ms, not removed: if the claiming process dies before
-- it is done, the timer falls due again and another process takes it.
local due = redis.call('ZRANGEBYSCORE', 'sp:timers', '-inf', now, 'LIMIT', 0, 100)
local lease = now + tonumber(ARGV[1])
for _, name in ipairs(due) do redis.call('ZADD', 'sp:timers', lease, name) end
return {due, tostring(lease)}
"""
)

# Token bucket: KEYS[1] the bucket, ARGV = rate per ms, burst. Returns '' or the wait in ms.
TAKE = (
    NOW_MS
    + """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens, stamp = tonumber(b[1]) or burst, tonumber(b[2]) or now
tokens = math.min(burst, tokens + (now - stamp) * rate)
local wait = ''
if tokens < 1 then wait = tostring((1 - tokens) / rate) else tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
return wait
"""
)

FORGET = """
local sub = ARGV[1]
redis.call('DEL', 'sp:seq:' .. sub, 'sp:st:' .. sub)
redis.call('ZREM', 'sp:seen', sub)
redis.call('SREM', 'sp:lost', sub)
return 1
"""

# A consistent view for a resume: the current seq, whether the device was lost (which it no
# longer is once this connection is welcomed), and the frames after ARGV[2].
OPEN = """
local sub = ARGV[1]
local seq = tonumber(redis.call('GET', 'sp:seq:' .. sub) or '0')
local lost = redis.call('SREM', 'sp:lost', sub)
local frames = redis.call('XRANGE', 'sp:st:' .. sub, ARGV[2], '+')
return {seq, lost, frames}
"""

RANGE = """
return redis.call('XRANGE', 'sp:st:' .. ARGV[1], ARGV[2], '+')
"""
