# Shared helpers of bench/read.sh and bench/write.sh: starting and stopping the servers they
# measure (and only those: every process is tracked and killed by its own pid), waiting for them
# with a deadline, CPU accounting from /proc, and the machine description for RESULTS.md.
# Source it; it sets ROOT, TMP and PATH and installs the cleanup trap.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Commands are run from the checkout root so that the ones printed in reports are rerunnable.
cd "$ROOT"
export PATH="$ROOT/.tools/node_modules/.bin:$PATH"
CLK_TCK=$(getconf CLK_TCK)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/firescroll-bench.XXXXXX")
STARTED_PIDS=()

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

# start_hello PORT: sets HELLO_PID.
start_hello() {
  port_free "$1"
  # shellcheck disable=SC2046
  $(server_prefix) deno run --allow-net=127.0.0.1 --allow-env bench/hello.ts "$1" \
    >"$TMP/hello.log" 2>&1 &
  HELLO_PID=$!
  STARTED_PIDS+=("$HELLO_PID")
  wait_log_event "$TMP/hello.log" hello_listening "$HELLO_PID" 30
}

# start_node NAME API_PORT INTERNAL_PORT: a fresh embedded node on a new temp DB_PATH bound to
# 127.0.0.1; sets NODE_PID and NODE_LOG. Extra node settings come from the caller's environment
# (PARTITIONS, APPLY_BATCH_MAX, ...), which the node reads itself.
start_node() {
  local name=$1 api=$2 internal=$3
  port_free "$api"
  port_free "$internal"
  NODE_LOG="$TMP/$name.log"
  mkdir -p "$TMP/$name-db"
  (
    # shellcheck disable=SC2046
    exec env -u KAFKA_SEEDS LISTEN_HOST=127.0.0.1 API_PORT="$api" INTERNAL_PORT="$internal" \
      DB_PATH="$TMP/$name-db" $(server_prefix) deno run --allow-all main.ts
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

# machine_json: nproc, CPU model, kernel, tool versions, commit, load, filesystem of TMP.
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
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg pin "${PIN:-0}" \
    '{date: $date, nproc: $nproc, cpu: $cpu, mem: $mem, kernel: $kernel, deno: $deno, v8: $v8,
      wrk: $wrk, h2load: $h2load, commit: $commit, src_files_changed: $dirty,
      loadavg_at_start: $load, tmp_fs: $fs, pinned: $pin}'
}
