-- wrk script with only a done() hook: prints the same "BENCH_JSON {...}" line as bench/get.lua
-- (throughput, latency percentiles in microseconds, error counts) for runs that send wrk's own
-- static request, e.g. GET / against bench/hello.ts. It defines no request()/response() hook, so
-- wrk keeps its fastest path; "non200" is therefore wrk's own count of statuses >= 400.

function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_us":%d,"p90_us":%d,' ..
      '"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,"non200":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, e.status,
    e.connect, e.read, e.write, e.status, e.timeout))
end
