#!/usr/bin/env bash
# Write benchmark of one embedded node: starts a fresh node (embedded log, temp DB_PATH,
# 127.0.0.1 only) and runs bench/write.ts against it: closed-loop writers at each concurrency,
# 1 and 100 records per request, measuring acknowledged records/s, ack latency and group commit
# (log appends per commit). Prints a Markdown block for bench/RESULTS.md on stdout.
#
# Knobs (env): WRITE_CONCURRENCY=1,16,64 WRITE_RECORDS_PER_REQUEST=1,100 WRITE_DURATION_S=10
#   PARTITIONS=16 WRITE_API_PORT=28290 WRITE_INTERNAL_PORT=28291 PIN=1 KEEP_TMP=1
# Usage: bash bench/write.sh > write.md

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export PARTITIONS=${PARTITIONS:-16}
WRITE_CONCURRENCY=${WRITE_CONCURRENCY:-1,16,64}
WRITE_RECORDS_PER_REQUEST=${WRITE_RECORDS_PER_REQUEST:-1,100}
WRITE_DURATION_S=${WRITE_DURATION_S:-10}
API_PORT_=${WRITE_API_PORT:-28290}
INTERNAL_PORT_=${WRITE_INTERNAL_PORT:-28291}

need deno curl jq taskset
machine_json >"$TMP/machine.json"

log "starting a fresh node on $API_PORT_/$INTERNAL_PORT_"
start_node write-node "$API_PORT_" "$INTERNAL_PORT_"

runs=$(($(tr ',' '\n' <<<"$WRITE_CONCURRENCY" | wc -l) * $(tr ',' '\n' <<<"$WRITE_RECORDS_PER_REQUEST" | wc -l)))
# Each run lasts WRITE_DURATION_S plus its apply catch-up (bounded by WRITE_CATCH_UP_TIMEOUT_S).
budget=$((runs * (WRITE_DURATION_S + ${WRITE_CATCH_UP_TIMEOUT_S:-30} + 10) + 60))
# Deno requires --allow-all to read /proc/<pid>/stat (the node's CPU use).
CMD=(deno run --allow-all
  bench/write.ts --url "http://127.0.0.1:$API_PORT_"
  --metrics-url "http://127.0.0.1:$INTERNAL_PORT_/metrics"
  --concurrency "$WRITE_CONCURRENCY" --records-per-request "$WRITE_RECORDS_PER_REQUEST"
  --duration-s "$WRITE_DURATION_S" --partitions "$PARTITIONS" --pid "$NODE_PID")
# shellcheck disable=SC2046
timeout "$budget" $(client_prefix) "${CMD[@]}" --json "$TMP/write.json" >"$TMP/write.md" ||
  die "write benchmark failed"
alive "$NODE_PID"

m() { jq -r ".$1" "$TMP/machine.json"; }
echo "### Write: acknowledged puts, embedded log ($(m date))"
echo
echo "Machine: $(m nproc) vCPU $(m cpu), $(m mem), Linux $(m kernel); $(m deno). Commit $(m commit)" \
  "($(m src_files_changed) uncommitted changes in src/ and main.ts). Load average at start:" \
  "$(m loadavg_at_start). Fresh node: embedded log (fsync per group commit), $PARTITIONS partitions," \
  "DB_PATH on $(m tmp_fs), LISTEN_HOST=127.0.0.1. Closed loop: each writer sends the next put when" \
  "the previous one is acknowledged; latency is measured in the Deno client (fetch to end of body)," \
  "so it includes the client's own cost, and the client shares the $(m nproc) CPUs with the node."
echo
echo "Command (node started as in \`bench/write.sh\`; \`--pid\` is the node's, for its CPU use):"
echo
echo '```sh'
printf '%q ' "${CMD[@]}" | sed -e "s|$TMP|\$TMP|g" -e 's/ $//' -e "s/--pid [0-9]*/--pid \$NODE_PID/"
echo
echo '```'
echo
cat "$TMP/write.md"
echo
echo "appends/commit = log messages sharing one group commit (one fsync). A put of 100 records"
echo "becomes one log message per partition it touches (up to $PARTITIONS), so its appends exceed"
echo "its requests. Apply catch-up = time after the last ack until a get with \`after\` saw every"
echo "acknowledged offset applied (**timeout** = not within WRITE_CATCH_UP_TIMEOUT_S). Unapplied msgs ="
echo "firescroll_log_appends_total − firescroll_apply_messages_total after that wait, cumulative since"
echo "the node started: anything but 0 is acknowledged writes the node has not applied."
