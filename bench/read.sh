#!/usr/bin/env bash
# Read benchmark of embedded nodes against a hello-world Deno.serve baseline, in the same run.
# Two modes; both print a Markdown block on stdout (progress goes to stderr).
#
# Default mode (one node): starts bench/hello.ts (HELLO_THREADS=1: the main thread serves) and a
# fresh node (embedded log, temp DB_PATH, 127.0.0.1 only; its SERVE_THREADS is the caller's, by
# default one serving thread per CPU), seeds RECORDS records (bench/seed.ts), warms both up, then
# alternates for ROUNDS rounds:
#   wrk  hello GET /                         (the baseline)
#   wrk  hello with bench/get.lua            (control: same client work as the node run)
#   wrk  node  POST /records/get, bench/get.lua (one random seeded key per request)
#   h2load hello GET /, h2load node /records/get with one fixed key (h2c prior knowledge)
# then a concurrency sweep of wrk against the node (latency at lower load). Report:
# bench/read_report.ts.
#
# THREADS_MATRIX=1 (serving threads, issue 13): in one run, hello x1 and hello xT (HELLO_THREADS=T:
# T Workers, each Deno.serve with reusePort; T = the node's default serving thread count, i.e. one
# per CPU the script may use, unless HELLO_THREADS is set), a node with SERVE_THREADS=1 and one with
# SERVE_THREADS=0 (its default: T threads), both seeded alike. Then for each pin mode of
# PIN_MODES="unpinned pinned" (unpinned: every thread of every server and the client on all CPUs;
# pinned: every server thread on SERVER_CPU, the client on CLIENT_CPU; set with taskset -a -p on
# the running servers), a warm-up per server and client, and ROUNDS rounds in alternating order of
# each client of MATRIX_CLIENTS="wrk h2load" against each server, with the server's CPU (all its
# threads) per request:
#   wrk (HTTP/1.1, THREADS, CONNS): get.lua against the nodes, GET / against the hellos, plus the
#     get.lua control against each hello with CONTROL=1;
#   h2load (h2c prior knowledge, H2_THREADS, H2_CLIENTS, H2_STREAMS): POST /records/get with the
#     fixed-key $BODY against the nodes, GET / against the hellos, plus that POST against each
#     hello with CONTROL=1.
# Both because the client shares the CPUs: wrk's CPU per request is of the order of the server's,
# which leaves a multi-threaded server little to scale into on 2 CPUs; h2load's is a fraction.
# Last, unpinned, the latency at HALF_LOAD (0.5) of each saturating throughput, HALF_CONNS
# connections each paced to its share (--rps), HALF_DURATION s, h2load's per-request log for the
# percentiles: h2load --h1 (one request at a time per connection) at half of wrk's throughput
# against the default node (the target), the SERVE_THREADS=1 node and hello xT; and with h2load in
# MATRIX_CLIENTS and H2_HALF=1, h2c (H2_HALF_STREAMS=1 streams per connection) at half of h2load's
# throughput against the default node. The PIN knob is not used in this mode. Report:
# bench/read_threads_report.ts, per client (targets: default node >= 1.7 x the SERVE_THREADS=1
# node unpinned; CPU per request <= 2 x hello's at the same thread count; p99 <= 1 ms at half
# load).
#
# Knobs (env): RECORDS=100000 PARTITIONS=16 ROUNDS=3 DURATION=10 WARMUP=3 THREADS=1 CONNS=32
#   H2_CLIENTS=8 H2_STREAMS=16 H2_THREADS=1 SWEEP_CONNS="1 2 4 8 16 32" SWEEP_DURATION=5
#   HELLO_PORT=28080 NODE_API_PORT=28190 NODE_INTERNAL_PORT=28191 SEED_TIMEOUT_S=600
#   PIN=1 (servers on CPU SERVER_CPU=1, clients on CLIENT_CPU=0) KEEP_TMP=1 (keep logs and raw
#   outputs) HELLO_THREADS=1
#   THREADS_MATRIX=1 with: HELLO_THREADS (default: the node's thread count) HELLO_T_PORT=28081
#   NODE1_API_PORT=28192 NODE1_INTERNAL_PORT=28193 (the SERVE_THREADS=1 node; the default node is
#   on NODE_API_PORT/NODE_INTERNAL_PORT) PIN_MODES="unpinned pinned" SERVER_CPU=1 CLIENT_CPU=0
#   CONTROL=1 HALF_LOAD=0.5 HALF_CONNS=CONNS HALF_DURATION=DURATION MATRIX_CLIENTS="wrk h2load"
#   H2_HALF=1 H2_HALF_STREAMS=1
# Usage: bash bench/read.sh > read.md
#        THREADS_MATRIX=1 bash bench/read.sh > read_threads.md

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
FIXED_KEY="user-$((RECORDS / 2))"
BODY="$TMP/get_body.json"
printf '{"records":[{"pk":"%s","sk":"profile"}]}' "$FIXED_KEY" >"$BODY"

# seed NAME API_PORT INTERNAL_PORT: seeds RECORDS records into the node (bench/seed.ts), its summary
# in $TMP/seed-NAME.json, then checks one get of FIXED_KEY; sets SAMPLE to that get's answer.
seed() {
  local name=$1 url="http://127.0.0.1:$2" seed_rc=0
  log "seeding $RECORDS records into $name"
  timeout "${SEED_TIMEOUT_S:-600}" deno run --allow-net=127.0.0.1 --allow-env "bench/seed.ts" \
    --url "$url" --records "$RECORDS" --partitions "$PARTITIONS" \
    --status-url "http://127.0.0.1:$3/internal/status" >"$TMP/seed-$name.json" || seed_rc=$?
  case $seed_rc in
    0) ;;
    3)
      # Reads do not need every partition caught up; say so loudly in the report instead of failing.
      log "WARNING: $name did not apply every acknowledged seed write in time; measuring anyway"
      echo '{"caught_up":false}' >"$TMP/seed-$name.json"
      ;;
    *) die "seeding $name failed" ;;
  esac
  cat "$TMP/seed-$name.json" >&2
  SAMPLE=$(curl -s --max-time 5 -H 'content-type: application/json' --data-binary "@$BODY" \
    "$url/records/get")
  jq -e '.records | length == 1' <<<"$SAMPLE" >/dev/null || die "sanity get on $name failed: $SAMPLE"
}

# The exact commands, with placeholders filled in, for the report.
WRK_HELLO=(wrk "-t$THREADS" "-c$CONNS" "-d${DURATION}s" --latency -s "bench/summary.lua" "$HELLO/")
WRK_HELLO_LUA=(wrk "-t$THREADS" "-c$CONNS" "-d${DURATION}s" --latency -s "bench/get.lua" "$HELLO/" -- "$RECORDS")
WRK_NODE=(wrk "-t$THREADS" "-c$CONNS" "-d${DURATION}s" --latency -s "bench/get.lua" "$NODE/" -- "$RECORDS")
H2_HELLO=(h2load "-D$DURATION" "-t$H2_THREADS" "-c$H2_CLIENTS" "-m$H2_STREAMS" "$HELLO/")
H2_NODE=(h2load "-D$DURATION" "-t$H2_THREADS" "-c$H2_CLIENTS" "-m$H2_STREAMS" -d "$BODY"
  -H 'content-type: application/json' "$NODE/records/get")

# Added to every result line (JSON object) and to raw file names, by the threads matrix.
RUN_EXTRA='{}'
RUN_TAG=""

# run NAME TOOL TARGET ROUND SERVER_PID SECONDS -- COMMAND...: measures one run of about SECONDS
# and appends a JSON line to $RESULTS.
run() {
  local name=$1 tool=$2 target=$3 round=$4 pid=$5 seconds=$6
  shift 7
  local out="$TMP/raw-$RUN_TAG$name-$round.txt" cpu
  log "round $round: $RUN_TAG$name"
  cpu=$(measure "$out" "$pid" -- timeout "$((seconds + SLACK))" "$@")
  alive "$pid"
  jq -nc --arg name "$name" --arg tool "$tool" --arg target "$target" --arg round "$round" \
    --arg raw "$out" --argjson cpu "$cpu" --arg cmd "$(printf '%q ' "$@")" \
    --argjson extra "$RUN_EXTRA" \
    '{name: $name, tool: $tool, target: $target, round: $round, raw: $raw, cmd: $cmd} + $cpu +
      $extra' >>"$RESULTS"
}

# --- THREADS_MATRIX=1 ----------------------------------------------------------------------------

# set_affinity CPUS PID...: every thread of each PID on CPUS (threads started later inherit it from
# the thread that starts them); dies unless every thread then shows CPUS.
set_affinity() {
  local cpus=$1 pid task want got attempt
  shift
  for pid in "$@"; do
    # A thread that exits between taskset's listing and its call fails the call: try again.
    for attempt in 1 2 3; do
      taskset -a -p -c "$cpus" "$pid" >/dev/null 2>&1 && break
      ((attempt < 3)) || die "cannot set the CPU affinity of $pid to $cpus"
      sleep 0.2
    done
    want=$(taskset -p -c "$pid" | sed 's/.*: //')
    for task in /proc/"$pid"/task/*; do
      got=$(taskset -p -c "${task##*/}" 2>/dev/null | sed 's/.*: //') || continue
      [[ -z "$got" || "$got" == "$want" ]] || die "thread ${task##*/} of $pid runs on $got, not $want"
    done
  done
}

# median_rps NAME PIN CLIENT: the median req/s of the saturating runs NAME of CLIENT (wrk or
# h2load) in pin mode PIN so far (empty if none).
median_rps() {
  jq -r --arg n "$1" --arg p "$2" --arg c "$3" \
    'select(.name == $n and .pin == $p and .tool == $c and .round != "half") | .raw' "$RESULTS" |
    while read -r raw; do
      if [[ "$3" == wrk ]]; then
        sed -n 's/^BENCH_JSON //p' "$raw"
      else
        sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/{"rps":\1}/p' "$raw"
      fi
    done | jq -rs "$JQ_MED"' map(.rps) | med // empty'
}

# The matrix: hello x1, hello xT, node SERVE_THREADS=1, node default; unpinned and pinned; each
# client of MATRIX_CLIENTS; then the latency at half load. See the header.
threads_matrix() {
  local hello_t_port=${HELLO_T_PORT:-28081} node1_api=${NODE1_API_PORT:-28192}
  local node1_internal=${NODE1_INTERNAL_PORT:-28193} pin_modes=${PIN_MODES:-unpinned pinned}
  local control=${CONTROL:-1} half_load=${HALF_LOAD:-0.5} half_conns=${HALF_CONNS:-$CONNS}
  local half_duration=${HALF_DURATION:-$DURATION} all_cpus server_cpu=${SERVER_CPU:-1}
  local clients=${MATRIX_CLIENTS:-wrk h2load} h2_half=${H2_HALF:-1}
  local h2_half_streams=${H2_HALF_STREAMS:-1}
  all_cpus=$(taskset -p -c $$ | sed 's/.*: //')
  local pin client
  for pin in $pin_modes; do
    [[ "$pin" == unpinned || "$pin" == pinned ]] || die "PIN_MODES: unknown mode $pin"
  done
  [[ -n "${clients// /}" ]] || die "MATRIX_CLIENTS is empty"
  for client in $clients; do
    [[ "$client" == wrk || "$client" == h2load ]] || die "MATRIX_CLIENTS: unknown client $client"
  done
  # The h2load runs and the half-load runs against the nodes post this fixed-key body.
  [[ -s "$BODY" ]] || die "no request body at $BODY"
  # Every server starts on every CPU this script may use, so the default node counts them all;
  # the pin modes then move the running servers (set_affinity).
  PIN=0
  log "starting the nodes: default threads on $NODE_API_PORT/$NODE_INTERNAL_PORT, SERVE_THREADS=1 on $node1_api/$node1_internal"
  start_node node-default "$NODE_API_PORT" "$NODE_INTERNAL_PORT" SERVE_THREADS=0
  local node_pid=$NODE_PID node_threads
  node_threads=$(event_field "$NODE_LOG" api_listening threads)
  [[ "$node_threads" =~ ^[0-9]+$ ]] || die "the default node logged no thread count (api_listening)"
  start_node node-1 "$node1_api" "$node1_internal" SERVE_THREADS=1
  local node1_pid=$NODE_PID
  [[ $(event_field "$NODE_LOG" api_listening threads) == 1 ]] ||
    die "the SERVE_THREADS=1 node did not log threads: 1"
  local t=${HELLO_THREADS:-$node_threads}
  [[ "$t" == "$node_threads" ]] ||
    log "WARNING: hello xT runs $t threads, the default node $node_threads"
  log "starting hello x1 on $HELLO_PORT and hello x$t on $hello_t_port (the default node: $node_threads threads)"
  start_hello "$HELLO_PORT" hello-1 1
  local hello1_pid=$HELLO_PID
  start_hello "$hello_t_port" hello-T "$t"
  local hellot_pid=$HELLO_PID
  local servers=("$hello1_pid" "$hellot_pid" "$node1_pid" "$node_pid")
  seed node-default "$NODE_API_PORT" "$NODE_INTERNAL_PORT"
  seed node-1 "$node1_api" "$node1_internal"

  local hello_t="http://127.0.0.1:$hello_t_port" node1="http://127.0.0.1:$node1_api"
  local servers_names=(hello-1 hello-T node-1 node-default)
  # The runs of one round, "CLIENT NAME": each client against each server, and with CONTROL=1 each
  # hello with the request the client sends the nodes (wrk: get.lua; h2load: the fixed-key POST).
  local runs=() name
  for client in $clients; do
    for name in "${servers_names[@]}"; do runs+=("$client $name"); done
    [[ "$control" == 1 ]] || continue
    if [[ "$client" == wrk ]]; then
      runs+=("wrk hello-1-getlua" "wrk hello-T-getlua")
    else
      runs+=("h2load hello-1-post" "h2load hello-T-post")
    fi
  done
  # matrix_cmd CLIENT NAME SECONDS: sets CMD to CLIENT's command against the server NAME names for
  # SECONDS s, CMD_PID to that server's pid and CMD_THREADS to its serving threads. wrk speaks
  # HTTP/1.1; h2load h2c with prior knowledge (its default for http:// URLs).
  matrix_cmd() {
    local url
    case $2 in
      hello-1*) url=$HELLO CMD_PID=$hello1_pid CMD_THREADS=1 ;;
      hello-T*) url=$hello_t CMD_PID=$hellot_pid CMD_THREADS=$t ;;
      node-1) url=$node1 CMD_PID=$node1_pid CMD_THREADS=1 ;;
      node-default) url=$NODE CMD_PID=$node_pid CMD_THREADS=$node_threads ;;
      *) die "unknown server $2" ;;
    esac
    if [[ "$1" == wrk ]]; then
      CMD=(wrk "-t$THREADS" "-c$CONNS" "-d${3}s" --latency)
      if [[ "$2" == node-* || "$2" == *-getlua ]]; then
        CMD+=(-s bench/get.lua "$url/" -- "$RECORDS")
      else
        CMD+=(-s bench/summary.lua "$url/")
      fi
    else
      CMD=(h2load "-D$3" "-t$H2_THREADS" "-c$H2_CLIENTS" "-m$H2_STREAMS")
      case $2 in
        node-*) CMD+=(-d "$BODY" -H 'content-type: application/json' "$url/records/get") ;;
        *-post) CMD+=(-d "$BODY" -H 'content-type: application/json' "$url/") ;;
        *) CMD+=("$url/") ;;
      esac
    fi
  }
  # matrix_run CLIENT NAME ROUND: one saturating run of CLIENT against the server NAME names.
  matrix_run() {
    local proto=h1
    [[ "$1" == h2load ]] && proto=h2c
    matrix_cmd "$1" "$2" "$DURATION"
    RUN_EXTRA=$(jq -nc --arg pin "$pin" --argjson threads "$CMD_THREADS" --arg proto "$proto" \
      '{pin: $pin, threads: $threads, proto: $proto}')
    RUN_TAG="$pin-$1-"
    run "$2" "$1" "${2%%-*}" "$3" "$CMD_PID" "$DURATION" -- "${CMD[@]}"
  }

  local round i order run_
  for pin in $pin_modes; do
    if [[ "$pin" == pinned ]]; then
      PIN=1
      log "pinned: every server thread on CPU $server_cpu, the client on CPU ${CLIENT_CPU:-0}"
      set_affinity "$server_cpu" "${servers[@]}"
    else
      PIN=0
      log "unpinned: every server thread and the client on CPUs $all_cpus"
      set_affinity "$all_cpus" "${servers[@]}"
    fi
    log "warm-up: ${WARMUP}s per server and client ($clients)"
    for client in $clients; do
      for name in "${servers_names[@]}"; do
        matrix_cmd "$client" "$name" "$WARMUP"
        # shellcheck disable=SC2046
        timeout $((WARMUP + SLACK)) $(client_prefix) "${CMD[@]}" >/dev/null
      done
    done
    for round in $(seq 1 "$ROUNDS"); do
      # Alternate the order so slow drift of the shared machine does not favour one side.
      order=("${runs[@]}")
      if ((round % 2 == 0)); then
        order=()
        for ((i = ${#runs[@]} - 1; i >= 0; i--)); do order+=("${runs[i]}"); done
      fi
      for run_ in "${order[@]}"; do matrix_run "${run_%% *}" "${run_#* }" "$round"; done
    done
  done

  # Latency at a fixed load, unpinned: HALF_LOAD of each server's median saturating throughput,
  # HALF_CONNS connections each paced to its share. HTTP/1.1 (h2load --h1, one request at a time
  # per connection) at half of wrk's throughput against node-default, node-1 and hello-T; with
  # h2load in MATRIX_CLIENTS and H2_HALF=1, h2c at half of h2load's against node-default, with
  # H2_HALF_STREAMS (1) streams per connection: the shape of the HTTP/1.1 check, so the two differ
  # in protocol only. (Paced h2load with more streams per connection showed latency growing with
  # the streams at a constant rate, p50 0.26 ms at -m1 to 2.0 ms at -m16 against hello x2 at 8k
  # req/s in a dev check; whether h2load's pacing or the server causes that is not known.)
  local half_runs=()
  if [[ " $pin_modes " != *" unpinned "* ]]; then
    log "WARNING: no unpinned rounds, so no latency check at half load"
  else
    if [[ " $clients " == *" wrk "* ]]; then
      half_runs+=("h1 node-default" "h1 node-1" "h1 hello-T")
    else
      log "WARNING: no wrk runs, so no HTTP/1.1 latency check at half load"
    fi
    if [[ " $clients " == *" h2load "* && "$h2_half" == 1 ]]; then
      half_runs+=("h2c node-default")
    fi
    PIN=0
    RUN_TAG=""
    set_affinity "$all_cpus" "${servers[@]}"
  fi
  local proto sat rate per url pid threads target conns logf
  for run_ in "${half_runs[@]}"; do
    proto=${run_%% *} name=${run_#* }
    case $name in
      node-default) url="$NODE/records/get" pid=$node_pid threads=$node_threads target=node ;;
      node-1) url="$node1/records/get" pid=$node1_pid threads=1 target=node ;;
      hello-T) url="$hello_t/" pid=$hellot_pid threads=$t target=hello ;;
    esac
    local args=()
    if [[ "$proto" == h1 ]]; then
      sat=$(median_rps "$name" unpinned wrk)
      conns=$half_conns
      logf="$TMP/h2load-half-$name.log"
      RUN_TAG=""
      args=(--h1 -t1 "-c$conns" -m1)
    else
      sat=$(median_rps "$name" unpinned h2load)
      conns=$half_conns
      logf="$TMP/h2load-half-h2c-$name.log"
      RUN_TAG="h2c-"
      args=(-t1 "-c$conns" "-m$h2_half_streams")
    fi
    [[ -n "$sat" ]] || die "no unpinned $proto run of $name to take the saturating load from"
    rate=$(awk -v s="$sat" -v f="$half_load" 'BEGIN {printf "%.0f", s * f}')
    per=$(awk -v r="$rate" -v c="$conns" 'BEGIN {printf "%.2f", r / c}')
    [[ "$target" == node ]] && args+=(-d "$BODY" -H 'content-type: application/json')
    RUN_EXTRA=$(jq -nc --arg log "$logf" --argjson threads "$threads" --arg proto "$proto" \
      --argjson sat "$sat" --argjson rate "$rate" \
      '{pin: "unpinned", threads: $threads, proto: $proto, log: $log, saturating_rps: $sat,
        target_rps: $rate}')
    log "half load, $proto: $name at $rate req/s ($half_load x $sat)"
    run "half-$name" h2load "$target" half "$pid" "$((half_duration + 1))" -- h2load "${args[@]}" \
      "--rps=$per" "-D$half_duration" --warm-up-time=1 "--log-file=$logf" "$url"
  done

  local seeds
  seeds=$(jq -s '{default: .[0], one: .[1]}' "$TMP/seed-node-default.json" "$TMP/seed-node-1.json")
  jq -n --argjson machine "$(cat "$TMP/machine.json")" --argjson seed "$seeds" \
    --arg sample "$SAMPLE" --arg records "$RECORDS" --arg partitions "$PARTITIONS" \
    --arg rounds "$ROUNDS" --arg duration "$DURATION" --arg warmup "$WARMUP" \
    --arg wrk_threads "$THREADS" --arg conns "$CONNS" --arg hello_threads "$t" \
    --arg node_threads "$node_threads" --arg all_cpus "$all_cpus" --arg server_cpu "$server_cpu" \
    --arg client_cpu "${CLIENT_CPU:-0}" --arg pin_modes "$pin_modes" --arg control "$control" \
    --arg half_load "$half_load" --arg half_conns "$half_conns" \
    --arg half_duration "$half_duration" --arg body "$(cat "$BODY")" --arg tmp "$TMP" \
    --arg clients "$clients" --arg h2_clients "$H2_CLIENTS" --arg h2_streams "$H2_STREAMS" \
    --arg h2_threads "$H2_THREADS" --arg h2_half_streams "$h2_half_streams" \
    '{machine: $machine, seed: $seed, sample: $sample, records: $records, partitions: $partitions,
      rounds: $rounds, duration: $duration, warmup: $warmup, wrk_threads: $wrk_threads,
      conns: $conns, hello_threads: $hello_threads, node_threads: $node_threads,
      all_cpus: $all_cpus, server_cpu: $server_cpu, client_cpu: $client_cpu,
      pin_modes: $pin_modes, control: $control, half_load: $half_load, half_conns: $half_conns,
      half_duration: $half_duration, body: $body, tmp: $tmp, clients: $clients,
      h2_clients: $h2_clients, h2_streams: $h2_streams, h2_threads: $h2_threads,
      h2_half_streams: $h2_half_streams}' >"$TMP/meta.json"
  deno run --allow-read="$TMP" "bench/read_threads_report.ts" "$TMP/meta.json" "$RESULTS"
}

log "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
machine_json >"$TMP/machine.json"

if [[ "${THREADS_MATRIX:-0}" == 1 ]]; then
  threads_matrix
  exit 0
fi

log "starting hello on $HELLO_PORT and a node on $NODE_API_PORT/$NODE_INTERNAL_PORT"
start_hello "$HELLO_PORT" hello "${HELLO_THREADS:-1}"
# The single-thread node this mode has always measured (serving threads: THREADS_MATRIX=1).
start_node node "$NODE_API_PORT" "$NODE_INTERNAL_PORT" "SERVE_THREADS=${SERVE_THREADS:-1}"
seed node "$NODE_API_PORT" "$NODE_INTERNAL_PORT"
cp "$TMP/seed-node.json" "$TMP/seed.json"

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
