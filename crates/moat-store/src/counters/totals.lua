-- ARGV: prefix, now, counter, kind, param. Returns {settled, reserved, exists}.
local s, r, exists = totals(ARGV[3], ARGV[4], ARGV[5], now_ms())
return { int(s), int(r), exists and 1 or 0 }
