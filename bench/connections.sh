#!/usr/bin/env bash
# Cost of closing idle connections (IDLE_TIMEOUT_MS=60000, the default: src/api/idle_sweeper.ts
# sweeps every 5 s) against a node without idle timeout (IDLE_TIMEOUT_MS=0), in the same run: get
# throughput with wrk (keep-alive, ROUNDS alternating rounds), then memory and file descriptors
# per idle keep-alive connection (IDLE_CONNS connections, loopback only; CONNECTIONS_MAX raised so
# none is cut). Prints Markdown on stdout.
#
# Knobs: ROUNDS=3 DURATION=10 CONNS=32 IDLE_CONNS=5000
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
IDLE_CONNS=${IDLE_CONNS:-5000}
export PARTITIONS=${PARTITIONS:-4}
need deno wrk curl
ulimit -n 65536 2>/dev/null || true

seed() {
  local url=$1 body='{"records":['
  for i in $(seq 0 999); do body+="{\"pk\":\"user-$i\",\"sk\":\"profile\",\"data\":{\"n\":$i}},"; done
  curl -sf -o /dev/null -X POST "$url/records/put" -d "${body%,}]}" || die "seeding $url failed"
}

CONNECTIONS_MAX=100000 IDLE_TIMEOUT_MS=60000 start_node sweeping 28290 28291
GUARDED_PID=$NODE_PID
CONNECTIONS_MAX=100000 IDLE_TIMEOUT_MS=0 start_node untimed 28292 28293
DIRECT_PID=$NODE_PID
seed http://127.0.0.1:28290
seed http://127.0.0.1:28292

run_wrk() {
  wrk -t1 -c"$CONNS" -d"${DURATION}s" -s bench/get.lua "http://127.0.0.1:$1" -- 1000 2>/dev/null |
    awk '/Requests\/sec/ {print $2}'
}
log "warm-up"
run_wrk 28290 >/dev/null
run_wrk 28292 >/dev/null
echo "| round | IDLE_TIMEOUT_MS=60000 req/s | IDLE_TIMEOUT_MS=0 req/s |"
echo "| ----- | --------------------------- | ----------------------- |"
for round in $(seq 1 "$ROUNDS"); do
  g=$(run_wrk 28290)
  d=$(run_wrk 28292)
  alive "$GUARDED_PID"
  alive "$DIRECT_PID"
  echo "| $round | $g | $d |"
done
echo
echo "Idle keep-alive connections ($IDLE_CONNS each, after one GET /healthz):"
echo
echo '```'
echo "IDLE_TIMEOUT_MS=60000: $(deno run --allow-all bench/idle_conns.ts 28290 "$GUARDED_PID" "$IDLE_CONNS")"
echo "IDLE_TIMEOUT_MS=0:     $(deno run --allow-all bench/idle_conns.ts 28292 "$DIRECT_PID" "$IDLE_CONNS")"
echo '```'
