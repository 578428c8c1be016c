-- ARGV: prefix, now ('' for server time), id, ttl_ms, then 6 per check:
-- counter, kind ('f' fixed, 's' sliding), param (expiry ms or '' / window length), limit,
-- amount, seeded ('1'/'0').
-- Returns {1, bucket1, used1, ...} admitted, {0, index, used} refused, {2, index...} unseeded.
local now, id, ttl = now_ms(), ARGV[3], tonumber(ARGV[4])
local checks = {}
for i = 5, #ARGV, 6 do
  checks[#checks + 1] = { counter = ARGV[i], kind = ARGV[i + 1], param = ARGV[i + 2],
    limit = tonumber(ARGV[i + 3]), amount = tonumber(ARGV[i + 4]), seeded = ARGV[i + 5] == '1' }
end
local unseeded = { 2 }
for i, c in ipairs(checks) do
  if c.seeded and redis.call('EXISTS', key(bucket_name(c.counter, c.kind, c.param, now))) == 0 then
    unseeded[#unseeded + 1] = i - 1
  end
end
if #unseeded > 1 then return unseeded end
local used = {}
for i, c in ipairs(checks) do
  local s, r = totals(c.counter, c.kind, c.param, now)
  local u = s + r
  if not (u < c.limit and u + c.amount <= c.limit) then return { 0, i - 1, int(u) } end
  used[i] = u + c.amount
end
local out = { 1 }
for i, c in ipairs(checks) do
  local bucket = bucket_name(c.counter, c.kind, c.param, now)
  local b = key(bucket)
  local previous = redis.call('HGET', b, '@' .. id)
  local reserved = tonumber(redis.call('HGET', b, 'r') or 0) - tonumber(previous or 0) + c.amount
  redis.call('HSET', b, 'r', int(reserved), '@' .. id, int(c.amount))
  redis.call('ZADD', b .. ':x', int(now + ttl), id)
  expire(b, c.kind, c.param, now, ttl)
  out[#out + 1] = bucket
  out[#out + 1] = int(used[i])
end
return out
