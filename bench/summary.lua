-- wrk script with only a done() hook: prints the same "BENCH_JSON {...}" line as bench/get.lua
-- (throughput, latency percentiles in microseconds, error counts) for runs that send wrk's own
-- static request, e.g. GET / against bench/hello.ts. It defines no request()/response() hook, so
-- wrk keeps its fastest path; "non200" is therefore wrk's own count of statuses >= 400.

dofile("bench/report.lua")

function done(summary, latency, requests)
  bench_report(summary, latency, summary.errors.status)
end
