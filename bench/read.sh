#!/usr/bin/env bash
# Read benchmark of one embedded node against a hello-world Deno.serve baseline, in the same run.
#
# Starts bench/hello.ts and a fresh node (embedded log, temp DB_PATH, 127.0.0.1 only), seeds
# RECORDS records (bench/seed.ts), warms both up, then alternates for ROUNDS rounds:
#   wrk  hello GET /                         (the baseline)
#   wrk  hello with bench/get.lua            (control: same client work as the node run)
#   wrk  node  POST /records/get, bench/get.lua (one random seeded key per request)
#   h2load hello GET /, h2load node /records/get with one fixed key (h2c prior knowledge)
# then a concurrency sweep of wrk against the node (latency at lower load). Prints a Markdown
# block for bench/RESULTS.md on stdout; progress goes to stderr.
#
# Knobs (env): RECORDS=100000 PARTITIONS=16 ROUNDS=3 DURATION=10 WARMUP=3 THREADS=1 CONNS=32
#   H2_CLIENTS=8 H2_STREAMS=16 H2_THREADS=1 SWEEP_CONNS="1 2 4 8 16 32" SWEEP_DURATION=5
#   HELLO_PORT=28080 NODE_API_PORT=28190 NODE_INTERNAL_PORT=28191
#   PIN=1 (servers on CPU SERVER_CPU=1, clients on CLIENT_CPU=0) KEEP_TMP=1 (keep logs and raw
#   outputs)
# Usage: bash bench/read.sh > read.md

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RECORDS=${RECORDS:-100000}
export PARTITIONS=${PARTITIONS:-16}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
THREADS=${THREADS:-1}
CONNS=${CONNS:-32}
H2_CLIENTS=${H2_CLIENTS:-8}
H2_STREAMS=${H2_STREAMS:-16}
H2_THREADS=${H2_THREADS:-1}
SWEEP_CONNS=${SWEEP_CONNS:-1 2 4 8 16 32}
SWEEP_DURATION=${SWEEP_DURATION:-5}
HELLO_PORT=${HELLO_PORT:-28080}
NODE_API_PORT=${NODE_API_PORT:-28190}
NODE_INTERNAL_PORT=${NODE_INTERNAL_PORT:-28191}

need deno wrk h2load curl jq taskset
HELLO="http://127.0.0.1:$HELLO_PORT"
NODE="http://127.0.0.1:$NODE_API_PORT"
RESULTS="$TMP/read.jsonl"
: >"$RESULTS"
# Every wrk/h2load run is killed if it overruns its duration by this much.
SLACK=30

log "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
machine_json >"$TMP/machine.json"

log "starting hello on $HELLO_PORT and a node on $NODE_API_PORT/$NODE_INTERNAL_PORT"
start_hello "$HELLO_PORT"
start_node node "$NODE_API_PORT" "$NODE_INTERNAL_PORT"

log "seeding $RECORDS records"
timeout "${SEED_TIMEOUT_S:-600}" deno run --allow-net=127.0.0.1 --allow-env "bench/seed.ts" \
  --url "$NODE" --records "$RECORDS" --partitions "$PARTITIONS" \
  --status-url "http://127.0.0.1:$NODE_INTERNAL_PORT/internal/status" >"$TMP/seed.json" ||
  seed_rc=$?
case ${seed_rc:-0} in
  0) ;;
  3)
    # Reads do not need every partition caught up; say so loudly in the report instead of failing.
    log "WARNING: the node did not apply every acknowledged seed write in time; measuring anyway"
    echo '{"caught_up":false}' >"$TMP/seed.json"
    ;;
  *) die "seeding failed" ;;
esac
cat "$TMP/seed.json" >&2

FIXED_KEY="user-$((RECORDS / 2))"
BODY="$TMP/get_body.json"
printf '{"records":[{"pk":"%s","sk":"profile"}]}' "$FIXED_KEY" >"$BODY"
SAMPLE=$(curl -s --max-time 5 -H 'content-type: application/json' --data-binary "@$BODY" \
  "$NODE/records/get")
jq -e '.records | length == 1' <<<"$SAMPLE" >/dev/null || die "sanity get failed: $SAMPLE"

# The exact commands, with placeholders filled in, for the report.
WRK_HELLO=(wrk "-t$THREADS" "-c$CONNS" "-d${DURATION}s" --latency -s "bench/summary.lua" "$HELLO/")
WRK_HELLO_LUA=(wrk "-t$THREADS" "-c$CONNS" "-d${DURATION}s" --latency -s "bench/get.lua" "$HELLO/" -- "$RECORDS")
WRK_NODE=(wrk "-t$THREADS" "-c$CONNS" "-d${DURATION}s" --latency -s "bench/get.lua" "$NODE/" -- "$RECORDS")
H2_HELLO=(h2load "-D$DURATION" "-t$H2_THREADS" "-c$H2_CLIENTS" "-m$H2_STREAMS" "$HELLO/")
H2_NODE=(h2load "-D$DURATION" "-t$H2_THREADS" "-c$H2_CLIENTS" "-m$H2_STREAMS" -d "$BODY"
  -H 'content-type: application/json' "$NODE/records/get")

# run NAME TOOL TARGET ROUND SERVER_PID SECONDS -- COMMAND...: measures one run of about SECONDS
# and appends a JSON line to $RESULTS.
run() {
  local name=$1 tool=$2 target=$3 round=$4 pid=$5 seconds=$6
  shift 7
  local out="$TMP/raw-$name-$round.txt" cpu
  log "round $round: $name"
  cpu=$(measure "$out" "$pid" -- timeout "$((seconds + SLACK))" "$@")
  alive "$pid"
  jq -nc --arg name "$name" --arg tool "$tool" --arg target "$target" --arg round "$round" \
    --arg raw "$out" --argjson cpu "$cpu" --arg cmd "$(printf '%q ' "$@")" \
    '{name: $name, tool: $tool, target: $target, round: $round, raw: $raw, cmd: $cmd} + $cpu' \
    >>"$RESULTS"
}

log "warm-up: ${WARMUP}s per server and client"
timeout $((WARMUP + SLACK)) wrk "-t$THREADS" "-c$CONNS" "-d${WARMUP}s" "$HELLO/" >/dev/null
timeout $((WARMUP + SLACK)) wrk "-t$THREADS" "-c$CONNS" "-d${WARMUP}s" -s "bench/get.lua" \
  "$NODE/" -- "$RECORDS" >/dev/null
timeout $((WARMUP + SLACK)) h2load "-D$WARMUP" "-t$H2_THREADS" "-c$H2_CLIENTS" "-m$H2_STREAMS" \
  "$HELLO/" >/dev/null
timeout $((WARMUP + SLACK)) h2load "-D$WARMUP" "-t$H2_THREADS" "-c$H2_CLIENTS" "-m$H2_STREAMS" \
  -d "$BODY" -H 'content-type: application/json' "$NODE/records/get" >/dev/null

for round in $(seq 1 "$ROUNDS"); do
  # Alternate the order so slow drift of the shared machine does not favour one side.
  if ((round % 2 == 1)); then
    run wrk-hello wrk hello "$round" "$HELLO_PID" "$DURATION" -- "${WRK_HELLO[@]}"
    run wrk-hello-getlua wrk hello "$round" "$HELLO_PID" "$DURATION" -- "${WRK_HELLO_LUA[@]}"
    run wrk-node wrk node "$round" "$NODE_PID" "$DURATION" -- "${WRK_NODE[@]}"
    run h2load-hello h2load hello "$round" "$HELLO_PID" "$DURATION" -- "${H2_HELLO[@]}"
    run h2load-node h2load node "$round" "$NODE_PID" "$DURATION" -- "${H2_NODE[@]}"
  else
    run h2load-node h2load node "$round" "$NODE_PID" "$DURATION" -- "${H2_NODE[@]}"
    run h2load-hello h2load hello "$round" "$HELLO_PID" "$DURATION" -- "${H2_HELLO[@]}"
    run wrk-node wrk node "$round" "$NODE_PID" "$DURATION" -- "${WRK_NODE[@]}"
    run wrk-hello-getlua wrk hello "$round" "$HELLO_PID" "$DURATION" -- "${WRK_HELLO_LUA[@]}"
    run wrk-hello wrk hello "$round" "$HELLO_PID" "$DURATION" -- "${WRK_HELLO[@]}"
  fi
done

for c in $SWEEP_CONNS; do
  run "sweep-node-c$c" wrk node "c$c" "$NODE_PID" "$SWEEP_DURATION" -- wrk "-t$THREADS" "-c$c" "-d${SWEEP_DURATION}s" \
    --latency -s "bench/get.lua" "$NODE/" -- "$RECORDS"
done

curl -s --max-time 5 "http://127.0.0.1:$NODE_INTERNAL_PORT/metrics" >"$TMP/node-metrics.txt" || true

jq -n --argjson machine "$(cat "$TMP/machine.json")" --argjson seed "$(cat "$TMP/seed.json")" \
  --arg sample "$SAMPLE" --arg records "$RECORDS" --arg partitions "$PARTITIONS" \
  --arg rounds "$ROUNDS" --arg duration "$DURATION" --arg warmup "$WARMUP" \
  --arg pin "${PIN:-0}" --arg tmp "$TMP" \
  '{machine: $machine, seed: $seed, sample: $sample, records: $records,
    partitions: $partitions, rounds: $rounds, duration: $duration, warmup: $warmup, pin: $pin,
    tmp: $tmp}' >"$TMP/meta.json"

deno run --allow-read="$TMP" "bench/read_report.ts" "$TMP/meta.json" "$RESULTS"
