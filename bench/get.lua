-- wrk script: single-key POST /records/get against a node seeded by bench/seed.ts.
--
-- Each request reads one random key "user-<i>" (sk "profile"), i uniform in [0, N). N comes from
-- the first script argument, else the RECORDS env var, else 100000:
--   wrk -t1 -c32 -d10s --latency -s bench/get.lua http://127.0.0.1:28190 -- 100000
-- The random sequence is fixed: thread k seeds math.random with 42 + k, so reruns send the same
-- keys in the same order per thread.
--
-- Every response whose status is not 200 is counted (wrk alone counts only >= 400), and done()
-- prints one line "BENCH_JSON {...}" with throughput, latency percentiles (microseconds) and the
-- counts, which bench/read.sh parses. The same done() is in bench/summary.lua for runs without
-- this script.

dofile("bench/report.lua")

local threads = {}
local thread_index = 0

function setup(thread)
  thread:set("id", thread_index)
  thread_index = thread_index + 1
  table.insert(threads, thread)
end

function init(args)
  n = tonumber(args[1] or os.getenv("RECORDS") or "100000")
  non200 = 0
  math.randomseed(42 + id)
  -- Some Lua builds return the same first value for close seeds: discard a few.
  for _ = 1, 3 do math.random() end
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  local i = math.random(0, n - 1)
  local body = '{"records":[{"pk":"user-' .. i .. '","sk":"profile"}]}'
  return wrk.format("POST", "/records/get", headers, body)
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  bench_report(summary, latency, bench_non200(threads))
end
