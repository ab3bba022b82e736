#!/usr/bin/env bash
# Hand-over restarts under load (issue 13): one node (embedded log, or MODE=kafka on the test
# broker, scripts/kafka.sh) is replaced RESTARTS times by a `TAKEOVER=1` successor with the same
# environment (DB_PATH, ports), each successor becoming the next one's predecessor, while
#   - wrk reads random seeded keys (bench/get.lua) at about LOAD_FRACTION of the node's saturating
#     get throughput. wrk has no fixed rate: a quick sweep over SAT_CONNS finds the saturating
#     throughput, and the load uses the connection count with the highest throughput not above
#     LOAD_FRACTION of it (so the sweep should step finely at the low end). wrk counts non-200 answers and socket errors (connect, read, write,
#     timeout); both are failed requests. It reconnects by itself after a connection closes.
#   - bench/restart_probe.ts sends a get every PROBE_INTERVAL_MS on each of PROBE_CONNS keep-alive
#     connections and PROBE_WRITERS sequential one-record puts, records every completion, and
#     reports per restart the longest interval without a completed read ("gap") and without an
#     acknowledged write ("write pause"); afterwards it reads every acknowledged write back.
# A restart: start the successor (TAKEOVER=1), wait for its `takeover_serving` line and for the old
# process to exit (its code must be 0). The restart's window runs from the successor's start to
# both. Prints a Markdown block with one row per restart and a summary (targets: 0 failed, longest
# gap ≤ 50 ms) on stdout; progress on stderr.
#
# Knobs (env): MODE=embedded|kafka RESTARTS=10 RECORDS=20000 PARTITIONS=8 THREADS=1 (wrk threads)
#   SAT_CONNS="1 2 4 8 16 32" SAT_DURATION=2 LOAD_FRACTION=0.5 LOAD_CONNS=N (skips the sweep)
#   PROBE_CONNS=4 PROBE_INTERVAL_MS=1 PROBE_WRITERS=1 SETTLE_S=2 (load before the first restart,
#   between restarts and after the last) RESTART_API_PORT=28590 RESTART_INTERNAL_PORT=28591
#   PIN=1 (node on CPU SERVER_CPU, wrk and the probe on CLIENT_CPU) KEEP_TMP=1 (keep logs)
#   KEEP_DATA=1 (keep this run's Kafka topics) SERVE_THREADS (the nodes'; default: theirs)
#   SUCCESSOR_NICE=N (start each successor with `nice -n N`, back to 0 once it serves)
# Usage: bash bench/restart.sh > restart.md
#        MODE=kafka bash bench/restart.sh > restart-kafka.md
#   quick: RESTARTS=2 RECORDS=2000 SAT_CONNS="1 4 16" SAT_DURATION=1 SETTLE_S=1 bash bench/restart.sh

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODE=${MODE:-embedded}
RESTARTS=${RESTARTS:-10}
RECORDS=${RECORDS:-20000}
PARTITIONS=${PARTITIONS:-8}
THREADS=${THREADS:-1}
SAT_CONNS=${SAT_CONNS:-1 2 4 8 16 32}
SAT_DURATION=${SAT_DURATION:-2}
LOAD_FRACTION=${LOAD_FRACTION:-0.5}
LOAD_CONNS=${LOAD_CONNS:-}
PROBE_CONNS=${PROBE_CONNS:-4}
PROBE_INTERVAL_MS=${PROBE_INTERVAL_MS:-1}
PROBE_WRITERS=${PROBE_WRITERS:-1}
SETTLE_S=${SETTLE_S:-2}
API=${RESTART_API_PORT:-28590}
INT=${RESTART_INTERNAL_PORT:-28591}
# Bounds: a successor serving, an old process exiting, and every load run's overrun.
SERVING_TIMEOUT_S=60
EXIT_TIMEOUT_S=30
SLACK=30

case $MODE in embedded | kafka) ;; *) die "MODE must be embedded or kafka, not $MODE" ;; esac
need deno wrk curl jq
URL="http://127.0.0.1:$API"
DB="$TMP/db"
NODE_ENV=(PARTITIONS="$PARTITIONS")
# The node's serving threads: its default (one per CPU) unless SERVE_THREADS is set.
if [[ -n "${SERVE_THREADS:-}" ]]; then NODE_ENV+=(SERVE_THREADS="$SERVE_THREADS"); fi
if [[ $MODE == kafka ]]; then
  ensure_kafka
  NODE_ENV+=(KAFKA_SEEDS="$KAFKA_ADDR" NAMESPACE="${RUN_ID}_rs" REPLICA_GROUP=g
    INSTANCE_ID=restart-node)
fi
LOAD_START=$(loadavg)
started_s=$SECONDS

# spawn_gen GEN [VAR=VALUE...]: node generation GEN on $DB and the ports (a clean environment:
# PATH, HOME, DENO_DIR, then NODE_ENV and the arguments); its log in $TMP/node-GEN.log. Sets
# GEN_PID and GEN_LOG. No port check: a successor binds its predecessor's ports.
spawn_gen() {
  local gen=$1
  shift
  GEN_LOG="$TMP/node-$gen.log"
  (
    # shellcheck disable=SC2046
    exec env -i PATH="$PATH" HOME="$HOME" ${DENO_DIR:+DENO_DIR="$DENO_DIR"} LISTEN_HOST=127.0.0.1 \
      API_PORT="$API" INTERNAL_PORT="$INT" DB_PATH="$DB" "${NODE_ENV[@]}" "$@" \
      $(server_prefix) ${GEN_NICE:+nice -n "$GEN_NICE"} deno run --allow-all main.ts
  ) >"$GEN_LOG" 2>&1 &
  GEN_PID=$!
  STARTED_PIDS+=("$GEN_PID")
}

# bench_json FILE: the BENCH_JSON object wrk's done() printed in FILE ({} when none).
bench_json() { grep -m1 '^BENCH_JSON ' "$1" 2>/dev/null | sed 's/^BENCH_JSON //' || echo '{}'; }

log "machine: $(nproc) CPUs, load $LOAD_START; mode $MODE, $RESTARTS restarts"
port_free "$API"
port_free "$INT"
mkdir -p "$DB"
spawn_gen 0
wait_log_event "$GEN_LOG" api_listening "$GEN_PID" 60
wait_http_200 "$URL/readyz" 60

log "seeding $RECORDS records"
seed_rc=0
timeout 600 deno run --allow-net=127.0.0.1 --allow-env bench/seed.ts --url "$URL" \
  --records "$RECORDS" --partitions "$PARTITIONS" \
  --status-url "http://127.0.0.1:$INT/internal/status" >"$TMP/seed.json" || seed_rc=$?
((seed_rc == 0)) || die "seeding failed (exit $seed_rc)"

timeout $((2 + SLACK)) wrk -t1 -c8 -d2s -s bench/get.lua "$URL/" -- "$RECORDS" >/dev/null
SWEEP=()
if [[ -z "$LOAD_CONNS" ]]; then
  best=0
  for c in $SAT_CONNS; do
    ((c >= THREADS)) || continue
    # shellcheck disable=SC2046
    timeout $((SAT_DURATION + SLACK)) $(client_prefix) wrk "-t$THREADS" "-c$c" "-d${SAT_DURATION}s" \
      -s bench/get.lua "$URL/" -- "$RECORDS" >"$TMP/sat-c$c.txt" 2>&1 || die "wrk sweep failed"
    rps=$(bench_json "$TMP/sat-c$c.txt" | jq '.rps | floor')
    log "sweep: $c connections → $rps gets/s"
    SWEEP+=("$c:$rps")
    if ((rps > best)); then best=$rps; fi
  done
  target=$(jq -n "$best * $LOAD_FRACTION | floor")
  # The connection count with the highest throughput not above the target (else the first).
  LOAD_CONNS=$(printf '%s\n' "${SWEEP[@]}" | awk -F: -v t="$target" '
    NR == 1 { first = $1 } $2 <= t && $2 > bt { best = $1; bt = $2 }
    END { print (best == "" ? first : best) }')
  log "saturating: $best gets/s; target $target gets/s → wrk -c$LOAD_CONNS"
fi

# Upper bound on the load's duration; it is stopped (SIGINT/SIGTERM) once the restarts are done.
LOAD_MAX_S=$((SETTLE_S + RESTARTS * (SETTLE_S + SERVING_TIMEOUT_S + EXIT_TIMEOUT_S) + 60))
WINDOWS="$TMP/windows.txt"
: >"$WINDOWS"
WRK_CMD=(wrk "-t$THREADS" "-c$LOAD_CONNS" "-d${LOAD_MAX_S}s" --latency -s bench/get.lua "$URL/" --
  "$RECORDS")
PROBE_CMD=(deno run --allow-net=127.0.0.1 "--allow-read=$TMP" bench/restart_probe.ts --url "$URL"
  --records "$RECORDS" --windows "$WINDOWS" --conns "$PROBE_CONNS" --interval-ms
  "$PROBE_INTERVAL_MS" --writers "$PROBE_WRITERS" --duration-s "$LOAD_MAX_S")
log "load: ${WRK_CMD[*]}"
log "probe: ${PROBE_CMD[*]}"
# shellcheck disable=SC2046
timeout $((LOAD_MAX_S + SLACK)) $(client_prefix) "${WRK_CMD[@]}" >"$TMP/load.txt" 2>&1 &
WRK_PID=$!
# shellcheck disable=SC2046
timeout $((LOAD_MAX_S + 2 * SLACK)) $(client_prefix) "${PROBE_CMD[@]}" >"$TMP/probe.json" \
  2>"$TMP/probe.err" &
PROBE_PID=$!
STARTED_PIDS+=("$WRK_PID" "$PROBE_PID")

RESTARTS_JSONL="$TMP/restarts.jsonl"
: >"$RESTARTS_JSONL"
pid=$GEN_PID
log_now=$GEN_LOG
for r in $(seq 1 "$RESTARTS"); do
  sleep "$SETTLE_S"
  kill -0 "$WRK_PID" 2>/dev/null || die "wrk ended early (see $TMP/load.txt)"
  kill -0 "$PROBE_PID" 2>/dev/null || die "the probe ended early (see $TMP/probe.err)"
  old_pid=$pid
  old_log=$log_now
  t0=$(date +%s%3N)
  GEN_NICE=${SUCCESSOR_NICE:-} spawn_gen "$r" TAKEOVER=1
  wait_log_event "$GEN_LOG" takeover_serving "$GEN_PID" "$SERVING_TIMEOUT_S"
  t_serving=$(date +%s%3N)
  if [[ -n "${SUCCESSOR_NICE:-}" ]]; then
    # Serving now: back to the default priority, every thread, as a supervisor would.
    for task in /proc/"$GEN_PID"/task/*; do renice -n 0 -p "${task##*/}" >/dev/null 2>&1 || true; done
  fi
  deadline=$((SECONDS + EXIT_TIMEOUT_S))
  while kill -0 "$old_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.02; done
  kill -0 "$old_pid" 2>/dev/null && die "restart $r: the old node $old_pid still runs after $EXIT_TIMEOUT_S s"
  code=0
  wait "$old_pid" || code=$?
  t1=$(date +%s%3N)
  echo "$t0 $t1" >>"$WINDOWS"
  jq -nc --argjson r "$r" --argjson old "$old_pid" --argjson new "$GEN_PID" --argjson code "$code" \
    --arg handed "$(event_field "$old_log" handed_over ms)" \
    --arg released "$(event_field "$GEN_LOG" takeover_released ms)" \
    --arg ready "$(event_field "$GEN_LOG" takeover_serving ready)" \
    --argjson serving "$((t_serving - t0))" --argjson total "$((t1 - t0))" \
    '{restart: $r, old: $old, new: $new, exit: $code, handed_over_ms: $handed,
      released_ms: $released, ready: $ready, serving_ms: $serving, window_ms: $total}' \
    >>"$RESTARTS_JSONL"
  log "restart $r: $old_pid → $GEN_PID, old exit $code, serving after $((t_serving - t0)) ms"
  pid=$GEN_PID
  log_now=$GEN_LOG
done
sleep "$SETTLE_S"

log "stopping the load"
kill -INT "$WRK_PID" 2>/dev/null || true
kill -TERM "$PROBE_PID" 2>/dev/null || true
wrk_rc=0
wait "$WRK_PID" || wrk_rc=$?
probe_rc=0
wait "$PROBE_PID" || probe_rc=$?
((probe_rc == 0)) || die "the probe failed (exit $probe_rc): $(tail -n 5 "$TMP/probe.err")"
LOAD_JSON=$(bench_json "$TMP/load.txt")
[[ "$LOAD_JSON" != "{}" ]] || die "wrk printed no summary (exit $wrk_rc): $(tail -n 5 "$TMP/load.txt")"
PROBE_JSON=$(cat "$TMP/probe.json")
INTERNAL_ERRORS=$(cat "$TMP"/node-*.log | grep -c '"event":"internal_error"' || true)
stop_node "$pid"
LOAD_END=$(loadavg)

# --- report -----------------------------------------------------------------------------------

jq -r -s --argjson probe "$PROBE_JSON" '
  .[] as $r | $probe.windows[$r.restart - 1] as $w |
  "| \($r.restart) | \($r.old) → \($r.new) | \($r.exit) | \($r.handed_over_ms) | \($r.released_ms) | \($r.serving_ms) | \($w.gap_ms) | \($w.write_gap_ms // "–") | \($w.failed) |"
' "$RESTARTS_JSONL" >"$TMP/rows.md"

SUMMARY=$(jq -n --argjson load "$LOAD_JSON" --argjson probe "$PROBE_JSON" \
  --slurpfile restarts "$RESTARTS_JSONL" '
  ($load.errors.connect + $load.errors.read + $load.errors.write + $load.errors.timeout) as $sock |
  {
    wrk_requests: $load.requests, wrk_rps: $load.rps, wrk_non200: $load.non200,
    wrk_socket_errors: $sock, wrk_errors: $load.errors, wrk_p99_us: $load.p99_us,
    wrk_max_us: $load.max_us,
    probe_failed: $probe.failed, failures: $probe.failures,
    failed_total: ($load.non200 + $sock + $probe.failed),
    gap_max_ms: ([$probe.windows[].gap_ms] | max),
    write_pause_max_ms: ([$probe.windows[].write_gap_ms | select(. != null)] | max),
    baseline_gap_ms: $probe.baseline_gap_ms, baseline_write_gap_ms: $probe.baseline_write_gap_ms,
    writes_acked: $probe.writes_acked, writes_missing: $probe.writes_missing,
    writes_wrong: $probe.writes_wrong, reads_ok: $probe.reads_ok,
    reads_per_s: $probe.reads_per_s,
    old_exit_nonzero: ([$restarts[] | select(.exit != 0)] | length),
    not_ready: ([$restarts[] | select(.ready != "true")] | length)
  }')
sj() { jq -r "$1" <<<"$SUMMARY"; }
verdict() {
  local failed gap
  failed=$(sj .failed_total)
  gap=$(sj .gap_max_ms)
  if ((failed == 0)) && jq -e "$gap <= 50" <<<null >/dev/null; then echo "met"; else echo "NOT met"; fi
}

cat <<EOF
### Hand-over restarts, $MODE log ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD))

$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), load average $LOAD_START at
start, $LOAD_END at the end; $((SECONDS - started_s)) s in all. $RECORDS records, $PARTITIONS
partitions, serving threads as configured by default. Saturating get throughput (wrk, $SAT_DURATION s
per point): ${SWEEP[*]:-"(sweep skipped)"} (connections:gets/s); load: wrk -c$LOAD_CONNS (target
$LOAD_FRACTION of the best), $(sj .wrk_rps | xargs printf '%.0f') gets/s on average over the run. Probe: $PROBE_CONNS
connections each sending a get every $PROBE_INTERVAL_MS ms ($(sj .reads_per_s) gets/s answered) and
$PROBE_WRITERS sequential writer(s).

| restart | old → new pid | old exit | handed_over ms | takeover_released ms | start → serving ms | longest gap, reads (ms) | write pause (ms) | probe failed |
| ------- | ------------- | -------- | -------------- | -------------------- | ------------------ | ----------------------- | ---------------- | ------------ |
$(cat "$TMP/rows.md")

- Failed requests: **$(sj .failed_total)** — wrk $(sj .wrk_requests) requests, $(sj .wrk_non200) non-200,
  $(sj .wrk_socket_errors) socket errors ($(sj '.wrk_errors | "connect \(.connect), read \(.read), write \(.write), timeout \(.timeout)"'));
  probe $(sj .probe_failed) failed$(sj 'if (.failures | length) > 0 then " (" + ([.failures | to_entries[] | "\(.value) × \(.key)"] | join("; ")) + ")" else "" end').
- Longest gap without a completed probe read around a restart: **$(sj .gap_max_ms) ms** (outside the
  restarts: $(sj .baseline_gap_ms) ms). Longest write pause: $(sj .write_pause_max_ms) ms (outside:
  $(sj .baseline_write_gap_ms) ms). wrk latency p99 $(sj .wrk_p99_us) µs, max $(sj .wrk_max_us) µs over the run.
- Acknowledged probe writes: $(sj .writes_acked), missing afterwards $(sj .writes_missing), wrong data
  $(sj .writes_wrong). Old processes that exited non-zero: $(sj .old_exit_nonzero); successors not
  ready at takeover_serving: $(sj .not_ready); internal_error lines in all node logs: $INTERNAL_ERRORS.
- Targets (0 failed, longest gap ≤ 50 ms): **$(verdict)**.

Command: \`MODE=$MODE RESTARTS=$RESTARTS RECORDS=$RECORDS PARTITIONS=$PARTITIONS LOAD_CONNS=$LOAD_CONNS PROBE_CONNS=$PROBE_CONNS PROBE_INTERVAL_MS=$PROBE_INTERVAL_MS PROBE_WRITERS=$PROBE_WRITERS SETTLE_S=$SETTLE_S bash bench/restart.sh\`
EOF
