-- ARGV: prefix, now, id, then pairs: bucket, actual. Returns 1 settled, 0 already settled.
local id = ARGV[3]
if not redis.call('SET', prefix .. ':q1:settled:' .. id, '1', 'NX', 'PX', 60000) then return 0 end
for i = 4, #ARGV, 2 do
  local b = key(ARGV[i])
  if redis.call('EXISTS', b) == 1 then
    local amount = redis.call('HGET', b, '@' .. id)
    if amount then
      local reserved = tonumber(redis.call('HGET', b, 'r') or 0) - tonumber(amount)
      if reserved < 0 then reserved = 0 end
      redis.call('HSET', b, 'r', int(reserved))
      redis.call('HDEL', b, '@' .. id)
      redis.call('ZREM', b .. ':x', id)
    end
    redis.call('HINCRBY', b, 's', ARGV[i + 1])
  end
end
return 1
