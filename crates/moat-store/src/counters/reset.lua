-- ARGV: prefix, now, then buckets whose settled totals are zeroed (reservations stay).
for i = 3, #ARGV do
  local b = key(ARGV[i])
  if redis.call('EXISTS', b) == 1 then redis.call('HSET', b, 's', '0') end
end
return 1
