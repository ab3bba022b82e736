-- Shared by the wrk scripts (loaded with dofile from the repository root, where bench/lib.sh
-- runs wrk): prints the "BENCH_JSON {...}" line the reports parse — throughput, latency
-- percentiles in microseconds, non-200 count, wrk's error counts.

function bench_report(summary, latency, non200)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_us":%d,"p90_us":%d,' ..
      '"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,"non200":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, non200,
    e.connect, e.read, e.write, e.status, e.timeout))
end

-- The non-200 responses counted by each thread's response() hook.
function bench_non200(threads)
  local non = 0
  for _, thread in ipairs(threads) do
    non = non + (thread:get("non200") or 0)
  end
  return non
end
