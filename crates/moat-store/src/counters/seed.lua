-- ARGV: prefix, now, bucket, settled, expires_at_ms ('' for none). Returns 1 created, 0 existed.
local b = key(ARGV[3])
if redis.call('EXISTS', b) == 1 then return 0 end
redis.call('HSET', b, 's', ARGV[4], 'r', '0')
if ARGV[5] ~= '' then redis.call('PEXPIREAT', b, ARGV[5]) else redis.call('PEXPIRE', b, int(IDLE_MS)) end
return 1
