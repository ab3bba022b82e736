#!/usr/bin/env bash
# Write benchmark of one embedded node, pinned and unpinned in the same run: for each mode of
# WRITE_PIN_MODES ("1 0": pinned first), starts a fresh node (embedded log, temp DB_PATH,
# 127.0.0.1 only; pinned = the node alone on CPU $SERVER_CPU, the client on $CLIENT_CPU) and runs
# bench/write.ts against it: closed-loop writers at each concurrency, 1 and 100 records per
# request, measuring acknowledged records/s, ack latency, group commit (log appends per commit),
# node CPU per put, and the disk flushes/s and bytes per record of the device holding DB_PATH.
# Prints a Markdown block for bench/RESULTS.md on stdout.
#
# Knobs (env): WRITE_CONCURRENCY=1,16,64 WRITE_RECORDS_PER_REQUEST=1,100 WRITE_DURATION_S=10
#   WRITE_PIN_MODES="1 0" SERVER_CPU=1 CLIENT_CPU=0 PARTITIONS=16 WRITE_API_PORT=28290
#   WRITE_INTERNAL_PORT=28291 KEEP_TMP=1
# Usage: bash bench/write.sh > write.md

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export PARTITIONS=${PARTITIONS:-16}
WRITE_CONCURRENCY=${WRITE_CONCURRENCY:-1,16,64}
WRITE_RECORDS_PER_REQUEST=${WRITE_RECORDS_PER_REQUEST:-1,100}
WRITE_DURATION_S=${WRITE_DURATION_S:-10}
WRITE_PIN_MODES=${WRITE_PIN_MODES:-1 0}
API_PORT_=${WRITE_API_PORT:-28290}
INTERNAL_PORT_=${WRITE_INTERNAL_PORT:-28291}

need deno curl jq taskset findmnt
machine_json >"$TMP/machine.json"
DISK=$(disk_device "$TMP")
LOAD_START=$(loadavg)

runs=$(($(tr ',' '\n' <<<"$WRITE_CONCURRENCY" | wc -l) * $(tr ',' '\n' <<<"$WRITE_RECORDS_PER_REQUEST" | wc -l)))
# Each run lasts WRITE_DURATION_S plus its apply catch-up (bounded by WRITE_CATCH_UP_TIMEOUT_S).
budget=$((runs * (WRITE_DURATION_S + ${WRITE_CATCH_UP_TIMEOUT_S:-30} + 10) + 60))
for PIN in $WRITE_PIN_MODES; do
  log "PIN=$PIN: starting a fresh node on $API_PORT_/$INTERNAL_PORT_"
  start_node "write-node-pin$PIN" "$API_PORT_" "$INTERNAL_PORT_"
  # Deno requires --allow-all to read /proc/<pid>/stat (the node's CPU use).
  CMD=(deno run --allow-all
    bench/write.ts --url "http://127.0.0.1:$API_PORT_"
    --metrics-url "http://127.0.0.1:$INTERNAL_PORT_/metrics"
    --concurrency "$WRITE_CONCURRENCY" --records-per-request "$WRITE_RECORDS_PER_REQUEST"
    --duration-s "$WRITE_DURATION_S" --partitions "$PARTITIONS" --pid "$NODE_PID")
  [[ -z "$DISK" ]] || CMD+=(--disk-device "$DISK")
  # shellcheck disable=SC2046
  timeout "$budget" $(client_prefix) "${CMD[@]}" --json "$TMP/write-pin$PIN.json" \
    >"$TMP/write-pin$PIN.md" || die "write benchmark failed"
  alive "$NODE_PID"
  stop_node "$NODE_PID"
done
LOAD_END=$(loadavg)
PROBE_END=$(cpu_probe)

m() { jq -r ".$1" "$TMP/machine.json"; }
echo "### Write: acknowledged puts, embedded log, pinned and unpinned ($(m date))"
echo
echo "Machine: $(m nproc) vCPU $(m cpu), $(m mem), Linux $(m kernel); $(m deno). Commit $(m commit)" \
  "($(m src_files_changed) uncommitted changes in src/ and main.ts). CPU probe" \
  "(\`bench/cpu_probe.ts\`, ms, lower is faster): $(m cpu_probe_ms) at start, $PROBE_END at the end. Load average at start:" \
  "$LOAD_START, at the end: $LOAD_END. A fresh node per mode: embedded log (fsync per group" \
  "commit), $PARTITIONS partitions, DB_PATH on $(m tmp_fs) (device ${DISK:-unknown})," \
  "LISTEN_HOST=127.0.0.1. Pinned: the node alone on CPU ${SERVER_CPU:-1}, the client on CPU" \
  "${CLIENT_CPU:-0} (\`taskset\`); unpinned: both float over the $(m nproc) CPUs. Closed loop:" \
  "each writer sends the next put when the previous one is acknowledged; latency is measured in" \
  "the Deno client (fetch to end of body), so it includes the client's own cost."
echo
echo "Command (node started as in \`bench/write.sh\`, under \`taskset -c ${SERVER_CPU:-1}\` when" \
  "pinned; the client under \`taskset -c ${CLIENT_CPU:-0}\`; \`--pid\` is the node's, for its CPU" \
  "and I/O):"
echo
echo '```sh'
printf '%q ' "${CMD[@]}" | sed -e "s|$TMP|\$TMP|g" -e 's/ $//' -e "s/--pid [0-9]*/--pid \$NODE_PID/"
echo
echo '```'
for PIN in $WRITE_PIN_MODES; do
  echo
  if [[ "$PIN" == 1 ]]; then echo "#### Pinned (node on CPU ${SERVER_CPU:-1}, client on CPU ${CLIENT_CPU:-0})"; else echo "#### Unpinned"; fi
  echo
  cat "$TMP/write-pin$PIN.md"
done
echo
echo "appends/commit = log messages sharing one group commit (one fsync). A put of 100 records"
echo "becomes one log message per partition it touches (up to $PARTITIONS), so its appends exceed"
echo "its requests. Apply catch-up = time after the last ack until a get with \`after\` saw every"
echo "acknowledged offset applied (**timeout** = not within WRITE_CATCH_UP_TIMEOUT_S). Unapplied msgs ="
echo "firescroll_log_appends_total − firescroll_apply_messages_total after that wait, cumulative since"
echo "the node started: anything but 0 is acknowledged writes the node has not applied. Node CPU"
echo "µs/put = the node's CPU (all threads, /proc/PID/stat) ÷ acknowledged puts. Disk columns come"
echo "from /proc/diskstats of ${DISK:-the DB_PATH device} during the run (flush requests, write"
echo "requests, bytes written ÷ acknowledged records): the whole device, so anything else writing to"
echo "it counts too; node bytes written/record is the node's own \`write_bytes\` (/proc/PID/io)."
