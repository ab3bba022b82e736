#!/usr/bin/env bash
# The floor under a get's CPU cost (issue 13): how much of what the node spends per HTTP/1.1 get is
# the runtime's and lmdb-js's, and how much is the node's own. In one run, side by side, all three
# started at once and measured in alternating order for ROUNDS rounds of DURATION s (wrk -t1,
# CONNS connections):
#   hello  bench/hello.ts, GET / (the issue's baseline);
#   floor  bench/threads_probe.ts in "process" mode: a Deno.serve that reads the get body
#          (req.json()), gets one key from one LMDB file of RECORDS records with lmdb-js and
#          answers its JSON — no FireScroll code, the least any get server here can do;
#   meta   the same in "process-metadata" mode, also reading what FireScroll's contract makes a
#          server read per request: method and path (routing), content-length (a body limit
#          checked before reading) and two clock reads (the latency histogram);
#   node   a node with SERVE_THREADS=1 (embedded log), seeded with RECORDS records;
# floor, meta and node with bench/get.lua (one random key per request, the same keys in the same
# order).
# Server CPU per request is from /proc (all threads of the process). PIN=1 puts the servers on
# SERVER_CPU and wrk on CLIENT_CPU. Prints a Markdown table per round and the medians.
#
# Knobs (env): ROUNDS=5 DURATION=8 CONNS=32 RECORDS=100000 PIN=0 SERVER_CPU=1 CLIENT_CPU=0
#   FLOOR_HELLO_PORT=28380 FLOOR_PORT=28381 FLOOR_NODE_API_PORT=28382 FLOOR_NODE_INTERNAL_PORT=28383
#   FLOOR_META_PORT=28384
# Usage: PIN=1 bash bench/get_floor.sh > floor-pinned.md; bash bench/get_floor.sh > floor.md

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
CONNS=${CONNS:-32}
RECORDS=${RECORDS:-100000}
export PARTITIONS=${PARTITIONS:-16}
HELLO_PORT=${FLOOR_HELLO_PORT:-28380}
FLOOR_PORT=${FLOOR_PORT:-28381}
NODE_API=${FLOOR_NODE_API_PORT:-28382}
NODE_INTERNAL=${FLOOR_NODE_INTERNAL_PORT:-28383}
META_PORT=${FLOOR_META_PORT:-28384}
need deno wrk jq taskset

port_free "$FLOOR_PORT"
port_free "$META_PORT"
log "seeding the floor's LMDB file ($RECORDS records)"
deno run -A bench/threads_probe.ts seed "$TMP" "$RECORDS"
start_hello "$HELLO_PORT"
hello_pid=$HELLO_PID
# shellcheck disable=SC2046
$(server_prefix) deno run -A bench/threads_probe.ts process "$TMP" "$FLOOR_PORT" \
  >"$TMP/floor.log" 2>&1 &
floor_pid=$!
STARTED_PIDS+=("$floor_pid")
# shellcheck disable=SC2046
$(server_prefix) deno run -A bench/threads_probe.ts process-metadata "$TMP" "$META_PORT" \
  >"$TMP/meta.log" 2>&1 &
meta_pid=$!
STARTED_PIDS+=("$meta_pid")
start_node node "$NODE_API" "$NODE_INTERNAL" SERVE_THREADS=1
node_pid=$NODE_PID
log "seeding the node ($RECORDS records)"
deno run --allow-net=127.0.0.1 --allow-env bench/seed.ts --url "http://127.0.0.1:$NODE_API" \
  --records "$RECORDS" --status-url "http://127.0.0.1:$NODE_INTERNAL/internal/status" >&2
sleep 2 # the floor server answers only gets; it is up well within this

declare -A PORT=([hello]=$HELLO_PORT [floor]=$FLOOR_PORT [meta]=$META_PORT [node]=$NODE_API)
declare -A PID=([hello]=$hello_pid [floor]=$floor_pid [meta]=$meta_pid [node]=$node_pid)
declare -A SCRIPT=([hello]=bench/summary.lua [floor]=bench/get.lua [meta]=bench/get.lua
  [node]=bench/get.lua)
declare -A US
hz=$(getconf CLK_TCK)

run() { # run SERVER SECONDS: prints "rps µs/req"
  local s=$1 secs=$2 before after out
  before=$(proc_ticks "${PID[$s]}")
  # shellcheck disable=SC2046
  out=$(timeout $((secs + 30)) $(client_prefix) wrk -t1 -c"$CONNS" -d"${secs}s" -s "${SCRIPT[$s]}" \
    "http://127.0.0.1:${PORT[$s]}/records/get" -- "$RECORDS" | grep BENCH_JSON | sed 's/^BENCH_JSON //')
  after=$(proc_ticks "${PID[$s]}")
  alive "${PID[$s]}"
  local rps non200
  rps=$(jq -r .rps <<<"$out")
  non200=$(jq -r .non200 <<<"$out")
  [[ $non200 == 0 || $s == hello ]] || die "$s answered $non200 non-200 responses"
  awk -v t=$((after - before)) -v hz="$hz" -v r="$rps" -v d="$secs" \
    'BEGIN {printf "%.0f %.2f\n", r, 1e6 * t / hz / (r * d)}'
}

for s in hello floor meta node; do run "$s" 3 >/dev/null; done
echo "Pinned: ${PIN:-0}; $(nproc) CPUs; $CONNS connections; $DURATION s per run; $RECORDS records."
echo "Server CPU µs per request (req/s in brackets) and ratios to hello."
echo
echo "| round | hello | floor | meta | node | floor ÷ hello | meta ÷ hello | node ÷ hello | node ÷ meta |"
echo "| ----- | ----: | ----: | ---: | ---: | ------------: | -----------: | -----------: | ----------: |"
ratios=()
for ((round = 1; round <= ROUNDS; round++)); do
  order=(hello floor meta node)
  ((round % 2 == 0)) && order=(node meta floor hello)
  declare -A RPS
  for s in "${order[@]}"; do
    read -r RPS[$s] US[$s] < <(run "$s" "$DURATION")
    log "round $round: $s ${RPS[$s]} req/s, ${US[$s]} µs/req"
  done
  line=$(awk -v h="${US[hello]}" -v f="${US[floor]}" -v m="${US[meta]}" -v n="${US[node]}" \
    'BEGIN {printf "%.2f | %.2f | %.2f | %.2f", f / h, m / h, n / h, n / m}')
  ratios+=("$line")
  cell() { echo "${US[$1]} (${RPS[$1]})"; }
  echo "| $round | $(cell hello) | $(cell floor) | $(cell meta) | $(cell node) | $line |"
done
echo
printf '%s\n' "${ratios[@]}" | awk -F' [|] ' '
  { f[NR] = $1; m[NR] = $2; n[NR] = $3; nm[NR] = $4 }
  function median(a, k,   i, j, t, b) { for (i = 1; i <= k; i++) b[i] = a[i];
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
    return k % 2 ? b[(k + 1) / 2] : (b[k / 2] + b[k / 2 + 1]) / 2 }
  END { printf "Medians over %d rounds: floor ÷ hello %.2f, meta ÷ hello %.2f, node ÷ hello %.2f, node ÷ meta %.2f.\n",
    NR, median(f, NR), median(m, NR), median(n, NR), median(nm, NR) }'
