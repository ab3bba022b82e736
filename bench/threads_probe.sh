#!/usr/bin/env bash
# Serving threads: workers vs processes (issue 13's first decision), measured with bench/threads_probe.ts.
# For each round, in turn: hello-world in 1 and N workers, the LMDB get in 1 and N workers of one
# process, and in N processes; wrk -t1 -c$CONNS for DURATION s each, unpinned (PIN=1: servers on
# CPU 1, wrk on CPU 0). Prints one Markdown row per run: req/s, p99, server CPU % and µs/request.
# Knobs: ROUNDS=3 DURATION=8 N=2 CONNS=32 RECORDS=100000 PORT=28880 PIN=0
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
N=${N:-2}
CONNS=${CONNS:-32}
RECORDS=${RECORDS:-100000}
PORT=${PORT:-28880}
need deno wrk jq taskset
port_free "$PORT"
deno run -A bench/threads_probe.ts seed "$TMP" "$RECORDS"
ticks_of() { local t=0 p; for p in "$@"; do t=$((t + $(proc_ticks "$p"))); done; echo "$t"; }
hz=$(getconf CLK_TCK)
echo "| round | server | req/s | p99 ms | server CPU % | server µs/req |"
echo "|---|---|--:|--:|--:|--:|"
for ((round = 1; round <= ROUNDS; round++)); do
  for kind in "hello 1" "hello $N" "workers 1" "workers $N" "process $N"; do
    set -- $kind
    pids=()
    case $1 in
      hello) $(server_prefix) deno run -A bench/threads_probe.ts hello "$PORT" "$2" & pids+=($!) ;;
      workers) $(server_prefix) deno run -A bench/threads_probe.ts workers "$TMP" "$PORT" "$2" & pids+=($!) ;;
      process) for ((i = 0; i < $2; i++)); do
          $(server_prefix) deno run -A bench/threads_probe.ts process "$TMP" "$PORT" & pids+=($!)
        done ;;
    esac
    STARTED_PIDS+=("${pids[@]}")
    sleep 3
    lua=bench/get.lua
    [[ $1 == hello ]] && lua=bench/summary.lua
    $(client_prefix) wrk -t1 -c"$CONNS" -d2s -s "$lua" "http://127.0.0.1:$PORT/" -- "$RECORDS" >/dev/null
    before=$(ticks_of "${pids[@]}")
    out=$($(client_prefix) wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$lua" "http://127.0.0.1:$PORT/" -- "$RECORDS" | grep BENCH_JSON | sed 's/^BENCH_JSON //')
    after=$(ticks_of "${pids[@]}")
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    rps=$(jq -r .rps <<<"$out")
    p99=$(jq -r '.p99_us / 1000' <<<"$out")
    cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v d="$DURATION" 'BEGIN {printf "%.0f", 100 * t / hz / d}')
    us=$(awk -v t=$((after - before)) -v hz="$hz" -v r="$rps" -v d="$DURATION" 'BEGIN {printf "%.1f", 1e6 * t / hz / (r * d)}')
    echo "| $round | $1 × $2 | $(printf "%.0f" "$rps") | $p99 | $cpu | $us |"
  done
done
