# Shared helpers of the bench/*.sh scripts: starting and stopping the servers they measure (and
# only those: every process is tracked and killed by its own pid; the Kafka broker and the S3
# server only when this run started them), waiting for them with a deadline, CPU accounting from
# /proc, reading node log events and metrics, and the machine description for RESULTS.md.
# Source it; it sets ROOT, TMP and PATH and installs the cleanup trap.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Commands are run from the checkout root so that the ones printed in reports are rerunnable.
cd "$ROOT"
export PATH="$ROOT/.tools/node_modules/.bin:$PATH"
CLK_TCK=$(getconf CLK_TCK)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/firescroll-bench.XXXXXX")
STARTED_PIDS=()
# Commands run by cleanup after every started process is gone (stop a broker this run started,
# delete this run's topics and objects). Each runs with `|| true`.
CLEANUP_HOOKS=()
# Node starts that failed and were retried by start_listening ("name: error"), for the reports.
START_RETRIES=()

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

cleanup() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for pid in "${STARTED_PIDS[@]}"; do
    local i
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  local i
  # Last registered first, like defers: topics are deleted before the broker that holds them stops.
  for ((i = ${#CLEANUP_HOOKS[@]} - 1; i >= 0; i--)); do eval "${CLEANUP_HOOKS[i]}" || true; done
  if [[ "${KEEP_TMP:-0}" == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need() {
  local tool
  for tool in "$@"; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
}

# Refuses to start on a port something else already listens on (tests may be running).
port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then die "port $1 is in use; pick another"; fi
}

# With PIN=1, servers run on CPU $SERVER_CPU and load generators on CPU $CLIENT_CPU.
server_prefix() { if [[ "${PIN:-0}" == 1 ]]; then echo "taskset -c ${SERVER_CPU:-1}"; fi; }
client_prefix() { if [[ "${PIN:-0}" == 1 ]]; then echo "taskset -c ${CLIENT_CPU:-0}"; fi; }

# wait_log_event FILE EVENT PID SECONDS: waits for a JSON log line with "event":"EVENT".
wait_log_event() {
  local file=$1 event=$2 pid=$3 deadline=$((SECONDS + $4))
  while ((SECONDS < deadline)); do
    if grep -q "\"event\":\"$event\"" "$file" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$file" >&2 || true
      die "process $pid exited before logging $event"
    fi
    sleep 0.1
  done
  tail -n 20 "$file" >&2 || true
  die "no $event within $4 s (log: $file)"
}

# wait_http_200 URL SECONDS
wait_http_200() {
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true) == 200 ]]; then
      return 0
    fi
    sleep 0.2
  done
  die "$1 did not answer 200 within $2 s"
}

# start_hello PORT [NAME] [THREADS]: bench/hello.ts with HELLO_THREADS=THREADS (default 1, the
# main thread alone), its log in $TMP/NAME.log (default hello); sets HELLO_PID.
start_hello() {
  local name=${2:-hello}
  port_free "$1"
  # shellcheck disable=SC2046
  HELLO_THREADS=${3:-1} $(server_prefix) deno run --allow-net=127.0.0.1 --allow-env \
    --allow-read=bench/hello.ts bench/hello.ts "$1" >"$TMP/$name.log" 2>&1 &
  HELLO_PID=$!
  STARTED_PIDS+=("$HELLO_PID")
  wait_log_event "$TMP/$name.log" hello_listening "$HELLO_PID" 30
}

# start_node NAME API_PORT INTERNAL_PORT [VAR=VALUE...]: a fresh embedded node on a new temp
# DB_PATH bound to 127.0.0.1; sets NODE_PID and NODE_LOG. Extra node settings come from the
# caller's environment (PARTITIONS, APPLY_BATCH_MAX, ...), which the node reads itself, then from
# the VAR=VALUE arguments (e.g. SERVE_THREADS=1).
start_node() {
  local name=$1 api=$2 internal=$3
  shift 3
  port_free "$api"
  port_free "$internal"
  NODE_LOG="$TMP/$name.log"
  mkdir -p "$TMP/$name-db"
  (
    # shellcheck disable=SC2046
    exec env -u KAFKA_SEEDS LISTEN_HOST=127.0.0.1 API_PORT="$api" INTERNAL_PORT="$internal" \
      DB_PATH="$TMP/$name-db" "$@" $(server_prefix) deno run --allow-all main.ts
  ) >"$NODE_LOG" 2>&1 &
  NODE_PID=$!
  STARTED_PIDS+=("$NODE_PID")
  wait_log_event "$NODE_LOG" api_listening "$NODE_PID" 60
  wait_http_200 "http://127.0.0.1:$api/readyz" 60
}

alive() { kill -0 "$1" 2>/dev/null || die "server $1 died (see logs in $TMP; KEEP_TMP=1 keeps them)"; }

# CPU ticks (user+system) of a whole process and of its main thread (the JS thread of Deno).
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
main_thread_ticks() { awk '{print $14 + $15}' "/proc/$1/task/$1/stat"; }
# "busy total" ticks of the whole machine, all CPUs.
machine_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }

# measure OUTFILE SERVER_PID -- COMMAND...: runs COMMAND (a load generator) with its stdout in
# OUTFILE and prints a JSON object of CPU use during the run: server process and its main
# thread, the load generator, and the whole machine, each in % of one CPU.
measure() {
  local out=$1 pid=$2
  shift 3
  local s0 m0 b0 t0 w0 w1 s1 m1 b1 t1
  s0=$(proc_ticks "$pid")
  m0=$(main_thread_ticks "$pid")
  read -r b0 t0 < <(machine_ticks)
  w0=$(date +%s%N)
  # shellcheck disable=SC2046
  /usr/bin/time -f '%U %S' -o "$out.time" $(client_prefix) "$@" >"$out" 2>"$out.err" ||
    log "warning: $* exited non-zero (see $out.err)"
  w1=$(date +%s%N)
  s1=$(proc_ticks "$pid")
  m1=$(main_thread_ticks "$pid")
  read -r b1 t1 < <(machine_ticks)
  local client
  client=$(tail -n 1 "$out.time")
  awk -v s="$((s1 - s0))" -v m="$((m1 - m0))" -v b="$((b1 - b0))" -v t="$((t1 - t0))" \
    -v wall="$((w1 - w0))" -v hz="$CLK_TCK" -v client="$client" -v ncpu="$(nproc)" 'BEGIN {
      secs = wall / 1e9; split(client, c, " ");
      printf "{\"wall_s\":%.2f,\"server_cpu_pct\":%.1f,\"server_main_thread_cpu_pct\":%.1f,", secs, 100 * s / hz / secs, 100 * m / hz / secs;
      printf "\"client_cpu_pct\":%.1f,\"machine_busy_pct\":%.1f}", 100 * (c[1] + c[2]) / secs, (t > 0 ? 100 * ncpu * b / t : 0);
    }'
}

# --- simulated regions (far_start.sh, geo.sh) ------------------------------------------------

# geo_broker_start PORT LISTENERS: a broker of this run's own (KAFKA_DIR=$TMP/kafka, ports PORT,
# +1 controller, +3 SASL) with the extra listeners LISTENERS ("NAME:PORT:ADVERTISED,...", see
# scripts/kafka.sh); stopped and wiped at exit.
geo_broker_start() {
  GEO_BROKER_PORT=$1
  GEO_LISTENERS=$2
  log "starting a broker of this run on 127.0.0.1:$1 (listeners: ${2:-none})"
  geo_kafka start >&2 || die "cannot start the broker"
  CLEANUP_HOOKS+=("geo_kafka stop --wipe >&2")
}
geo_kafka() {
  KAFKA_DIR="$TMP/kafka" KAFKA_PORT=$GEO_BROKER_PORT KAFKA_CONTROLLER_PORT=$((GEO_BROKER_PORT + 1)) \
    KAFKA_SASL_PORT=$((GEO_BROKER_PORT + 3)) KAFKA_EXTRA_LISTENERS="$GEO_LISTENERS" \
    bash scripts/kafka.sh "$@"
}

# region_proxy NAME LISTEN UPSTREAM RTT_MS: a toxiproxy proxy adding RTT_MS per round trip (the
# server is started if it does not run, and stopped at exit then); deleted at exit.
region_proxy() {
  if ! bash scripts/toxiproxy.sh status; then
    bash scripts/toxiproxy.sh start >&2 || die "cannot start toxiproxy"
    CLEANUP_HOOKS+=("bash scripts/toxiproxy.sh stop >&2")
  fi
  bash scripts/toxiproxy.sh proxy "$@" || die "cannot create the proxy $1"
  CLEANUP_HOOKS+=("bash scripts/toxiproxy.sh delete $1")
}

# write_backlog URL MESSAGES: MESSAGES one-record messages through URL's /records/put
# (bench/backlog.ts, 16 messages per request, 16 requests in flight).
write_backlog() {
  deno run --allow-net=127.0.0.1 --allow-env bench/backlog.ts --url "$1" --records "$2" \
    --records-per-message 1 --messages-per-request 16 --partitions "$PARTITIONS" \
    --concurrency 16 --timeout-s 300 >/dev/null || die "backlog writer failed"
}

# ab_rounds ROUNDS SIDE [BASE_TREE]: the A/B scripts' rounds. Each round runs
# `SIDE ROUND new $ROOT` and `SIDE ROUND base BASE_TREE`, the order alternating (A B, B A, ...) so
# that drift of a shared machine favours neither; without BASE_TREE only the new side runs.
ab_rounds() {
  local rounds=$1 side=$2 base=${3:-} round
  for round in $(seq 1 "$rounds"); do
    if [[ -z "$base" ]]; then
      "$side" "$round" new "$ROOT"
    elif ((round % 2 == 1)); then
      "$side" "$round" new "$ROOT"
      "$side" "$round" base "$base"
    else
      "$side" "$round" base "$base"
      "$side" "$round" new "$ROOT"
    fi
  done
}

# JQ_MED: a jq definition the A/B reports start their programs with: `med`, the median of an
# array of numbers (nulls ignored; null when none is left).
JQ_MED='def med: map(select(. != null)) | sort |
  if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
  else (.[length / 2 - 1] + .[length / 2]) / 2 end;'

# cpu_probe: bench/cpu_probe.ts on CPU $SERVER_CPU (ms, lower is faster; "?" when it fails).
cpu_probe() { taskset -c "${SERVER_CPU:-1}" deno run bench/cpu_probe.ts 2>/dev/null || echo "?"; }

# machine_json: nproc, CPU model, kernel, tool versions, commit, load, filesystem of TMP, and the
# CPU probe at the start.
machine_json() {
  local cpu commit dirty
  cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git -C "$ROOT" status --porcelain -- src main.ts 2>/dev/null | wc -l)
  jq -n --arg cpu "$cpu" --arg nproc "$(nproc)" --arg kernel "$(uname -r)" \
    --arg deno "$(deno --version | head -n 1)" --arg v8 "$(deno --version | sed -n 2p)" \
    --arg wrk "$(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)" \
    --arg h2load "$(h2load --version 2>&1 | head -n 1)" --arg commit "$commit" \
    --arg dirty "$dirty" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --arg fs "$(df -T "$TMP" | awk 'NR == 2 {print $2}')" \
    --arg mem "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)" \
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg pin "${PIN:-0}" --arg probe "$(cpu_probe)" \
    '{date: $date, nproc: $nproc, cpu: $cpu, mem: $mem, kernel: $kernel, deno: $deno, v8: $v8,
      wrk: $wrk, h2load: $h2load, commit: $commit, src_files_changed: $dirty,
      loadavg_at_start: $load, tmp_fs: $fs, pinned: $pin, cpu_probe_ms: $probe}'
}

# --- Kafka, S3 and multi-node helpers (bench/kafka.sh, bench/cluster.sh, bench/backup.sh) -------

KAFKA_ADDR="127.0.0.1:${KAFKA_PORT:-19092}"
S3_URL="http://127.0.0.1:${S3_PORT:-19000}"
S3_BUCKET_NAME=firescroll-test
# Namespaces of one run share this prefix, so their topics and objects are deleted together.
RUN_ID="bench_$(date -u +%Y%m%d%H%M%S)_$$"

# ensure_kafka: starts the test broker (scripts/kafka.sh) unless it already runs; stops it at
# exit only when this run started it. Also deletes this run's topics at exit (KEEP_DATA=1 keeps
# them).
ensure_kafka() {
  if bash scripts/kafka.sh status >/dev/null 2>&1; then
    log "kafka already runs on $KAFKA_ADDR: using it, leaving it running"
  elif (exec 3<>"/dev/tcp/${KAFKA_ADDR%:*}/${KAFKA_ADDR##*:}") 2>/dev/null; then
    # Another checkout's broker (a git worktree has its own .cache/kafka-run): starting a second
    # one on the same port would fail.
    log "a broker (not this checkout's) listens on $KAFKA_ADDR: using it, leaving it running"
  else
    log "starting kafka (scripts/kafka.sh start)"
    bash scripts/kafka.sh start >&2 || die "cannot start kafka"
    CLEANUP_HOOKS+=("log 'stopping kafka (this run started it)'; bash scripts/kafka.sh stop >&2")
  fi
  if [[ "${KEEP_DATA:-0}" != 1 ]]; then
    CLEANUP_HOOKS+=("delete_topics")
  fi
}

# delete_topics: deletes every topic of this run's namespaces (one JVM start).
delete_topics() {
  log "deleting topics firescroll_${RUN_ID}_*"
  timeout 60 bash scripts/kafka.sh tool org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$KAFKA_ADDR" --delete --if-exists --topic "firescroll_${RUN_ID}_.*" \
    >/dev/null 2>&1 || log "warning: could not delete topics firescroll_${RUN_ID}_*"
}

# ensure_s3: like ensure_kafka, for the test S3 server (scripts/s3.sh); deletes this run's
# objects at exit (KEEP_DATA=1 keeps them).
ensure_s3() {
  if bash scripts/s3.sh status >/dev/null 2>&1; then
    log "s3 already runs on $S3_URL: using it, leaving it running"
  else
    log "starting s3 (scripts/s3.sh start)"
    bash scripts/s3.sh start >&2 || die "cannot start s3"
    CLEANUP_HOOKS+=("log 'stopping s3 (this run started it)'; bash scripts/s3.sh stop >&2")
  fi
  if [[ "${KEEP_DATA:-0}" != 1 ]]; then
    CLEANUP_HOOKS+=("delete_objects")
  fi
}

# s3_curl ARGS...: curl signed for the test server (its fixed credentials).
s3_curl() {
  curl -sS --max-time "${S3_CURL_TIMEOUT_S:-120}" --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user firescroll:firescroll-secret \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" "$@"
}

# s3_keys PREFIX: the object keys under PREFIX (first 1000).
s3_keys() {
  s3_curl "$S3_URL/$S3_BUCKET_NAME?list-type=2&prefix=$1" | grep -o '<Key>[^<]*</Key>' |
    sed -e 's/<Key>//' -e 's/<\/Key>//'
}

# delete_objects: deletes the objects of this run's namespaces.
delete_objects() {
  local key n=0
  while read -r key; do
    [[ "$key" == "${RUN_ID}"* ]] || continue
    s3_curl -o /dev/null -X DELETE "$S3_URL/$S3_BUCKET_NAME/$key" || true
    n=$((n + 1))
  done < <(s3_keys "$RUN_ID" || true)
  log "deleted $n objects under s3://$S3_BUCKET_NAME/${RUN_ID}*"
}

# port_free_on HOST PORT: like port_free, on another loopback address.
port_free_on() {
  if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then die "port $1:$2 is in use; pick another"; fi
}

# spawn_node NAME HOST API_PORT INTERNAL_PORT [VAR=VALUE...]: starts a node in the background
# and returns at once. The node gets a clean environment (PATH, HOME, DENO_DIR only, so no
# FireScroll setting of the caller's shell leaks in), LISTEN_HOST=HOST, the ports,
# DB_PATH=$TMP/NAME-db, then the VAR=VALUE arguments (which may override DB_PATH). Sets NODE_PID,
# NODE_LOG, NODE_DB and NODE_T0_MS (wall clock just before the exec, ms since the epoch).
spawn_node() {
  local name=$1 host=$2 api=$3 internal=$4
  shift 4
  port_free_on "$host" "$api"
  port_free_on "$host" "$internal"
  NODE_LOG="$TMP/$name.log"
  NODE_DB="$TMP/$name-db"
  local kv
  for kv in "$@"; do [[ "$kv" == DB_PATH=* ]] && NODE_DB=${kv#DB_PATH=}; done
  mkdir -p "$NODE_DB"
  NODE_T0_MS=$(date +%s%3N)
  (
    # shellcheck disable=SC2046
    exec env -i PATH="$PATH" HOME="$HOME" ${DENO_DIR:+DENO_DIR="$DENO_DIR"} \
      LISTEN_HOST="$host" API_PORT="$api" INTERNAL_PORT="$internal" DB_PATH="$NODE_DB" "$@" \
      $(server_prefix) deno run --allow-all main.ts
  ) >"$NODE_LOG" 2>&1 &
  NODE_PID=$!
  STARTED_PIDS+=("$NODE_PID")
}

# stop_node PID [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 40); waits for the exit.
stop_node() {
  local pid=$1 deadline=$((SECONDS + ${2:-40}))
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "warning: node $pid did not stop within ${2:-40} s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# event_field LOG EVENT FIELD: FIELD of the first JSON line of LOG with "event":"EVENT" (empty
# when none).
event_field() {
  grep -m1 "\"event\":\"$2\"" "$1" 2>/dev/null | jq -r ".$3 // empty" 2>/dev/null || true
}

# event_ms LOG EVENT: the timestamp of the first EVENT line of LOG, ms since the epoch.
event_ms() {
  local ts
  ts=$(event_field "$1" "$2" ts)
  [[ -n "$ts" ]] && date -d "$ts" +%s%3N
}

# metric_value URL NAME: the value of the first sample of NAME (with its labels, if any, as
# written) in the Prometheus text at URL; 0 when absent.
metric_value() {
  # awk reads to the end: exiting at the match would fail curl with a write error (exit 23),
  # which pipefail turns into a failed benchmark.
  curl -s --max-time 5 "$1" | awk -v n="$2" '!found && $1 == n {print $2; found = 1} END {if (!found) print 0}'
}

# loadavg: the 1/5/15-minute load averages.
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# start_listening NAME HOST API_PORT INTERNAL_PORT [VAR=VALUE...]: spawn_node, then waits up to
# 60 s for its api_listening event. A node that exits with start_failed is started again after
# 2 s, up to 3 attempts: a broker started seconds ago can fail the node's first metadata request
# after creating its topics ("This server does not host this topic-partition"), and the node
# exits instead of retrying. The retries are logged; NODE_* describe the last attempt.
start_listening() {
  local attempt
  for attempt in 1 2 3; do
    spawn_node "$@"
    local deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
      if grep -q '"event":"api_listening"' "$NODE_LOG" 2>/dev/null; then return 0; fi
      kill -0 "$NODE_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$NODE_PID" 2>/dev/null; then
      tail -n 20 "$NODE_LOG" >&2 || true
      die "node $1 did not log api_listening within 60 s"
    fi
    wait "$NODE_PID" 2>/dev/null || true
    if ! grep -q '"event":"start_failed"' "$NODE_LOG" || ((attempt == 3)); then
      tail -n 20 "$NODE_LOG" >&2 || true
      die "node $1 exited before logging api_listening"
    fi
    log "WARNING: node $1 failed to start ($(grep -m1 -o '"event":"start_failed".*' "$NODE_LOG")); retrying in 2 s"
    START_RETRIES+=("$1: $(grep -m1 '"event":"start_failed"' "$NODE_LOG" | jq -r .error 2>/dev/null || echo '?')")
    mv "$NODE_LOG" "$NODE_LOG.failed-$attempt"
    sleep 2
  done
}

# start_retries_note: a sentence for a report about node starts that had to be retried, or
# nothing.
start_retries_note() {
  ((${#START_RETRIES[@]} > 0)) || return 0
  printf 'Node starts retried after `start_failed` (see the helper `start_listening` in bench/lib.sh): %s.' \
    "$(printf '%s; ' "${START_RETRIES[@]}" | sed 's/; $//')"
}

# --- disk accounting (write.sh, kafka.sh) -----------------------------------------------------

# disk_device DIR: the block device holding DIR as /proc/diskstats names it (vda, nvme0n1p2,
# dm-0), or nothing when it is not a block device (tmpfs, overlay without one).
disk_device() {
  local source name
  source=$(findmnt -n -o SOURCE -T "$1" 2>/dev/null | head -n 1) || return 0
  [[ "$source" == /dev/* ]] || return 0
  name=$(basename "$(readlink -f "$source")")
  if awk -v d="$name" '$3 == d {found = 1} END {exit !found}' /proc/diskstats; then echo "$name"; fi
}

# disk_sample DEVICE: "writes_completed bytes_written flushes_completed" of DEVICE, cumulative
# (flushes are 0 on kernels before 5.5); "0 0 0" when DEVICE is empty.
disk_sample() {
  if [[ -z "$1" ]]; then
    echo "0 0 0"
    return
  fi
  awk -v d="$1" '$3 == d {printf "%d %.0f %d\n", $8, $10 * 512, (NF > 18 ? $19 : 0)}' /proc/diskstats
}

# proc_write_bytes PID: bytes PID caused to be written to storage so far (/proc/PID/io).
proc_write_bytes() { awk '/^write_bytes:/ {print $2}' "/proc/$1/io" 2>/dev/null || echo 0; }
