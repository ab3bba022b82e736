-- wrk script: single-key POST /records/get of a random key from a key list file, one pk per line
-- (bench/cluster_keys.ts writes the "local" and "remote" lists of bench/cluster.sh); sk is
-- "profile", as bench/seed.ts writes it:
--   wrk -t1 -c32 -d10s --latency -s bench/get_keys.lua http://127.0.0.31:8190 -- keys.txt
-- Otherwise the same as bench/get.lua: fixed random sequence per thread (seed 42 + thread),
-- non-200 responses counted, and a "BENCH_JSON {...}" line from done().

dofile("bench/report.lua")

local threads = {}
local thread_index = 0

function setup(thread)
  thread:set("id", thread_index)
  thread_index = thread_index + 1
  table.insert(threads, thread)
end

function init(args)
  local path = args[1] or os.getenv("KEYS_FILE")
  if path == nil then error("pass the key list file: -- FILE") end
  keys = {}
  for line in io.lines(path) do
    if line ~= "" then keys[#keys + 1] = line end
  end
  if #keys == 0 then error("no keys in " .. path) end
  non200 = 0
  math.randomseed(42 + id)
  for _ = 1, 3 do math.random() end
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  local pk = keys[math.random(1, #keys)]
  local body = '{"records":[{"pk":"' .. pk .. '","sk":"profile"}]}'
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
