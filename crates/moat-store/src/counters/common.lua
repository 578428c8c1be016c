-- moat counters v1: helpers shared by every script (prepended to each).
-- A bucket B is a hash: `s` settled, `r` reserved, `@<id>` one reservation's amount; its
-- reservations' expiries are the sorted set B..':x'. Mirrors moat_core::quota::Book.
local prefix = ARGV[1]
local function now_ms()
  if ARGV[2] ~= '' then return tonumber(ARGV[2]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function key(bucket) return prefix .. ':q1:' .. bucket end
local function int(x) return string.format('%.0f', x) end
local function drop_expired(b, now)
  local gone = redis.call('ZRANGEBYSCORE', b .. ':x', '-inf', now)
  for _, id in ipairs(gone) do
    local amount = redis.call('HGET', b, '@' .. id)
    if amount then
      local reserved = tonumber(redis.call('HGET', b, 'r') or 0) - tonumber(amount)
      if reserved < 0 then reserved = 0 end
      redis.call('HSET', b, 'r', int(reserved))
      redis.call('HDEL', b, '@' .. id)
    end
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', b .. ':x', '-inf', now) end
end
-- Returns settled, reserved, exists.
local function read(bucket, now)
  local b = key(bucket)
  if redis.call('EXISTS', b) == 0 then return 0, 0, false end
  drop_expired(b, now)
  return tonumber(redis.call('HGET', b, 's') or 0), tonumber(redis.call('HGET', b, 'r') or 0), true
end
local function bucket_name(counter, kind, param, now)
  if kind == 's' then return counter .. '@' .. int(math.floor(now / tonumber(param))) end
  return counter
end
-- ceil(total * overlap / length), exactly: the quotient is corrected with exact products.
local function share(total, length, now)
  local a = total * (length - (now % length))
  local q = math.floor(a / length)
  if q * length > a then q = q - 1 elseif (q + 1) * length <= a then q = q + 1 end
  if q * length < a then q = q + 1 end
  return q
end
-- Settled, reserved, exists for a counter: a sliding one adds the previous bucket's overlap.
local function totals(counter, kind, param, now)
  local s, r, exists = read(bucket_name(counter, kind, param, now), now)
  if kind == 's' then
    local length = tonumber(param)
    local ps, pr = read(bucket_name(counter, kind, param, now - length), now)
    s = s + share(ps, length, now)
    r = r + share(pr, length, now)
  end
  return s, r, exists
end
local IDLE_MS = 31 * 24 * 3600 * 1000
local function expire(b, kind, param, now, ttl)
  local at
  if kind == 's' then
    local length = tonumber(param)
    at = (math.floor(now / length) + 2) * length
  elseif param ~= '' then
    at = tonumber(param)
  end
  if at then
    redis.call('PEXPIREAT', b, int(at))
    redis.call('PEXPIREAT', b .. ':x', int(math.max(at, now + ttl)))
  else
    redis.call('PEXPIRE', b, int(IDLE_MS))
    redis.call('PEXPIRE', b .. ':x', int(IDLE_MS))
  end
end
