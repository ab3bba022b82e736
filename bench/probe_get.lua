-- wrk script for bench/threads_probe.ts: POST {"k":"user-<i>"}, i uniform in [0, N) (first script
-- argument, default 100000), fixed seed per thread; prints the BENCH_JSON line of report.lua.
dofile("bench/report.lua")
local threads = {}
local thread_index = 0
function setup(thread)
  thread:set("id", thread_index)
  thread_index = thread_index + 1
  table.insert(threads, thread)
end
function init(args)
  n = tonumber(args[1] or "100000")
  non200 = 0
  math.randomseed(42 + id)
  for _ = 1, 3 do math.random() end
end
function request()
  local body = '{"k":"user-' .. math.random(0, n - 1) .. '"}'
  return wrk.format("POST", "/", { ["content-type"] = "application/json" }, body)
end
function response(status)
  if status ~= 200 then non200 = non200 + 1 end
end
function done(summary, latency, requests)
  bench_report(summary, latency, bench_non200(threads))
end
