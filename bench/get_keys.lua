-- wrk script: single-key POST /records/get of a random key from a key list file, one pk per line
-- (bench/cluster_keys.ts writes the "local" and "remote" lists of bench/cluster.sh); sk is
-- "profile", as bench/seed.ts writes it:
--   wrk -t1 -c32 -d10s --latency -s bench/get_keys.lua http://127.0.0.31:8190 -- keys.txt
-- Otherwise the same as bench/get.lua: fixed random sequence per thread (seed 42 + thread),
-- non-200 responses counted, and a "BENCH_JSON {...}" line from done().

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
  local non = 0
  for _, thread in ipairs(threads) do
    non = non + (thread:get("non200") or 0)
  end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_us":%d,"p90_us":%d,' ..
      '"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,"non200":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, non,
    e.connect, e.read, e.write, e.status, e.timeout))
end
