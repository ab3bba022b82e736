#!/usr/bin/env bash
# Kafka benchmark: FireScroll nodes on the real test broker (scripts/kafka.sh, 127.0.0.1:19092;
# started if it is not running, and then stopped at the end). Four parts, each on fresh
# namespaces of this run (their topics are deleted at the end unless KEEP_DATA=1):
#
#   a. writes, side by side, for each mode of KAFKA_PIN_MODES ("1 0": pinned first; pinned =
#      the measured process alone on CPU $SERVER_CPU, the load client on $CLIENT_CPU):
#        raw    bench/producer.ts --mode raw: kafkajs alone, one-record messages with the producer
#               settings of src/log/kafka.ts (idempotent, acks -1, explicit partition);
#        append bench/producer.ts --mode append: the project's KafkaLog.append alone (the
#               ceiling for this client; nothing consumed);
#        node   node A (replica group g1) alone; bench/write.ts closed-loop writers (1, 16, 64) of
#               1- and 100-record puts → records/s acknowledged (acks=-1), ack latency p50/p99,
#               node CPU per put, disk flushes/s and bytes per record of the DB_PATH device;
#      and the ratio node ÷ append for one-record puts (target ≥ 0.6).
#   b. propagation: node B joins in replica group g2; bench/propagation.ts writes one new key to
#      A at PROP_RATE/s (open loop, PROP_COUNT writes after PROP_WARMUP) and reads it on B with
#      `after` = A's offsets and `wait_ms` → ack-to-visible-on-B p50/p99/max.
#   c. catch-up: a writer node (group g1 of a new namespace) writes a backlog of CATCHUP_RECORDS
#      records (bench/backlog.ts) in messages of CATCHUP_RECORDS_PER_MESSAGE records while no
#      replica of group g3 runs, and stops; then node C (group g3, empty DB_PATH) starts and
#      bench/catchup.ts polls its /internal/status every 100 ms until every partition reached
#      the high watermark → messages/s and records/s applied. Repeated with 1 record per message
#      for CATCHUP1_RECORDS records (0 skips it).
#   d. growth: a fresh node (group g1 of a new namespace) takes GROWTH_ROUNDS rounds of
#      GROWTH_RECORDS records each (100-record puts, one partition and one log message each,
#      bench/backlog.ts, BACKLOG_CONCURRENCY in flight) → per-round records/s, node CPU per record,
#      disk flushes/s and bytes per record: no slowdown as the data grows. GROWTH_ROUNDS=0 skips
#      it; GROWTH_RECORDS=1000000 is the full check (≈ 3 minutes more). The default run takes ≈ 4.5 minutes.
#
# Prints a Markdown block for bench/RESULTS.md on stdout; progress on stderr.
#
# Knobs (env): PARTITIONS=16 WRITE_CONCURRENCY=1,16,64 WRITE_RECORDS_PER_REQUEST=1,100
#   WRITE_DURATION_S=5 KAFKA_PIN_MODES="1 0" SERVER_CPU=1 CLIENT_CPU=0 PROP_COUNT=2000
#   PROP_RATE=200 PROP_WARMUP=200 CATCHUP_RECORDS=1000000 CATCHUP_RECORDS_PER_MESSAGE=100
#   CATCHUP1_RECORDS=200000 BACKLOG_CONCURRENCY=16 CATCHUP_TIMEOUT_S=300 GROWTH_ROUNDS=5
#   GROWTH_RECORDS=100000 KAFKA_BENCH_PORT_BASE=28300 KAFKA_BENCH_PORT_STEP=100 (nodes A, B, C
#   and the writers use BASE+90/91, BASE+90+STEP/+91, BASE+90+2×STEP/+91 on 127.0.0.1)
#   PIN=1 (parts b–d pinned too) KEEP_TMP=1 KEEP_DATA=1
# Usage: bash bench/kafka.sh > kafka.md

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export PARTITIONS=${PARTITIONS:-16}
WRITE_CONCURRENCY=${WRITE_CONCURRENCY:-1,16,64}
WRITE_RECORDS_PER_REQUEST=${WRITE_RECORDS_PER_REQUEST:-1,100}
WRITE_DURATION_S=${WRITE_DURATION_S:-5}
KAFKA_PIN_MODES=${KAFKA_PIN_MODES:-1 0}
PIN_REST=${PIN:-0}
PROP_COUNT=${PROP_COUNT:-2000}
PROP_RATE=${PROP_RATE:-200}
PROP_WARMUP=${PROP_WARMUP:-200}
CATCHUP_RECORDS=${CATCHUP_RECORDS:-1000000}
CATCHUP_RECORDS_PER_MESSAGE=${CATCHUP_RECORDS_PER_MESSAGE:-100}
CATCHUP1_RECORDS=${CATCHUP1_RECORDS:-200000}
GROWTH_ROUNDS=${GROWTH_ROUNDS:-5}
GROWTH_RECORDS=${GROWTH_RECORDS:-100000}
BACKLOG_CONCURRENCY=${BACKLOG_CONCURRENCY:-16}
CATCHUP_TIMEOUT_S=${CATCHUP_TIMEOUT_S:-300}
BASE=${KAFKA_BENCH_PORT_BASE:-28300}
STEP=${KAFKA_BENCH_PORT_STEP:-100}
A_API=$((BASE + 90)) A_INT=$((BASE + 91))
B_API=$((BASE + 90 + STEP)) B_INT=$((BASE + 91 + STEP))
C_API=$((BASE + 90 + 2 * STEP)) C_INT=$((BASE + 91 + 2 * STEP))
HOST=127.0.0.1

need deno curl jq taskset findmnt
ensure_kafka
machine_json >"$TMP/machine.json"
LOAD_START=$(loadavg)
DISK=$(disk_device "$TMP")
started_s=$SECONDS

# kafka_node START NAME API INTERNAL NAMESPACE GROUP [VAR=VALUE...]: START (spawn_node, or
# start_listening to also wait for the node to listen) with the Kafka settings.
kafka_node() {
  local start=$1 name=$2 api=$3 internal=$4 ns=$5 group=$6
  shift 6
  "$start" "$name" "$HOST" "$api" "$internal" KAFKA_SEEDS="$KAFKA_ADDR" NAMESPACE="$ns" \
    REPLICA_GROUP="$group" INSTANCE_ID="$name" PARTITIONS="$PARTITIONS" "$@"
}

# --- a. writes: raw kafkajs, KafkaLog.append, the node; pinned and unpinned --------------
runs=$(($(tr ',' '\n' <<<"$WRITE_CONCURRENCY" | wc -l) * $(tr ',' '\n' <<<"$WRITE_RECORDS_PER_REQUEST" | wc -l)))
conc_n=$(tr ',' '\n' <<<"$WRITE_CONCURRENCY" | wc -l)
modes_left=$(wc -w <<<"$KAFKA_PIN_MODES")
for PIN in $KAFKA_PIN_MODES; do
  modes_left=$((modes_left - 1))
  declare "LOAD_A_$PIN=$(loadavg)"
  for mode in raw append; do
    log "a. PIN=$PIN: $mode producer (bench/producer.ts), namespace ${RUN_ID}_${mode}$PIN"
    PRODUCER_CMD=(deno run --allow-all bench/producer.ts --mode "$mode" --brokers "$KAFKA_ADDR"
      --namespace "${RUN_ID}_${mode}$PIN" --partitions "$PARTITIONS" --concurrency "$WRITE_CONCURRENCY"
      --duration-s "$WRITE_DURATION_S")
    # The producer stands where the node stands: pinned alone on the server CPU.
    # shellcheck disable=SC2046
    timeout $((conc_n * (WRITE_DURATION_S + 20) + 90)) $(server_prefix) "${PRODUCER_CMD[@]}" \
      --json "$TMP/$mode-pin$PIN.json" >/dev/null || die "$mode producer failed"
  done
  NS="${RUN_ID}_k$PIN"
  log "a. PIN=$PIN: node A (group g1) on $A_API/$A_INT, namespace $NS"
  kafka_node start_listening "a$PIN" "$A_API" "$A_INT" "$NS" g1
  A_PID=$NODE_PID
  wait_http_200 "http://$HOST:$A_API/readyz" 60
  WRITE_CMD=(deno run --allow-all bench/write.ts --url "http://$HOST:$A_API"
    --metrics-url "http://$HOST:$A_INT/metrics" --concurrency "$WRITE_CONCURRENCY"
    --records-per-request "$WRITE_RECORDS_PER_REQUEST" --duration-s "$WRITE_DURATION_S"
    --partitions "$PARTITIONS" --pid "$A_PID")
  [[ -z "$DISK" ]] || WRITE_CMD+=(--disk-device "$DISK")
  # shellcheck disable=SC2046
  timeout $((runs * (WRITE_DURATION_S + 40) + 60)) $(client_prefix) "${WRITE_CMD[@]}" \
    --json "$TMP/write-pin$PIN.json" >"$TMP/write-pin$PIN.md" || die "write benchmark failed"
  alive "$A_PID"
  # The last mode's node A stays up: part b reads its writes from another replica group.
  ((modes_left == 0)) || stop_node "$A_PID"
done
PIN=$PIN_REST

# --- b. propagation -------------------------------------------------------------------------
log "b. node B (group g2) on $B_API/$B_INT; it first catches up with part a's writes"
kafka_node start_listening b "$B_API" "$B_INT" "$NS" g2
B_PID=$NODE_PID
wait_http_200 "http://$HOST:$B_API/readyz" "$CATCHUP_TIMEOUT_S"
B_READY_MS=$(($(date +%s%3N) - NODE_T0_MS))
LOAD_B=$(loadavg)
PROP_CMD=(deno run --allow-net=127.0.0.1 bench/propagation.ts --write-url "http://$HOST:$A_API"
  --read-url "http://$HOST:$B_API" --count "$PROP_COUNT" --rate "$PROP_RATE"
  --warmup "$PROP_WARMUP" --metrics-url "http://$HOST:$B_INT/metrics")
# shellcheck disable=SC2046
timeout $(((PROP_COUNT + PROP_WARMUP) / PROP_RATE + 120)) $(client_prefix) "${PROP_CMD[@]}" \
  >"$TMP/propagation.json" || die "propagation benchmark failed"
jq -c . "$TMP/propagation.json" >&2
alive "$A_PID"
alive "$B_PID"
log "stopping A and B"
stop_node "$B_PID"
stop_node "$A_PID"

# --- c. catch-up ----------------------------------------------------------------------------
# catch_up LABEL RECORDS RECORDS_PER_MESSAGE MESSAGES_PER_REQUEST: writes the backlog through a
# writer node of a new namespace, stops it, starts node C and appends a JSON line to
# $TMP/catchup.jsonl.
catch_up() {
  local label=$1 records=$2 rpm=$3 mpr=$4 ns="${RUN_ID}_c$1"
  log "c. [$label] writer node (group g1) on $A_API/$A_INT, namespace $ns: $records records, $rpm per message"
  kafka_node start_listening "w$label" "$A_API" "$A_INT" "$ns" g1
  local w_pid=$NODE_PID
  wait_http_200 "http://$HOST:$A_API/readyz" 60
  local backlog_cmd=(deno run --allow-net=127.0.0.1 --allow-env bench/backlog.ts
    --url "http://$HOST:$A_API" --records "$records" --records-per-message "$rpm"
    --messages-per-request "$mpr" --partitions "$PARTITIONS" --concurrency "$BACKLOG_CONCURRENCY"
    --timeout-s 600)
  # shellcheck disable=SC2046
  timeout 660 $(client_prefix) "${backlog_cmd[@]}" >"$TMP/backlog-$label.json" ||
    die "backlog writer failed"
  jq -c 'del(.high_watermarks)' "$TMP/backlog-$label.json" >&2
  log "c. [$label] stopping the writer; starting node C (group g3, empty DB_PATH) on $C_API/$C_INT"
  stop_node "$w_pid"
  local load
  load=$(loadavg)
  kafka_node spawn_node "c$label" "$C_API" "$C_INT" "$ns" g3
  local c_pid=$NODE_PID c_log=$NODE_LOG t0=$NODE_T0_MS
  local watch_cmd=(deno run --allow-net=127.0.0.1 --allow-read="$TMP" bench/catchup.ts
    --status-url "http://$HOST:$C_INT/internal/status" --ready-url "http://$HOST:$C_API/readyz"
    --targets "$TMP/backlog-$label.json" --t0-ms "$t0" --interval-ms 100
    --timeout-s "$CATCHUP_TIMEOUT_S")
  timeout $((CATCHUP_TIMEOUT_S + 30)) "${watch_cmd[@]}" >"$TMP/catchup-$label.json" ||
    log "WARNING: node C did not catch up within $CATCHUP_TIMEOUT_S s"
  alive "$c_pid"
  local ticks applied
  ticks=$(proc_ticks "$c_pid")
  applied=$(metric_value "http://$HOST:$C_INT/metrics" firescroll_apply_messages_total)
  local assigned_ms
  assigned_ms=$(event_ms "$c_log" partition_assigned || true)
  assigned_ms=$((${assigned_ms:-$t0} - t0))
  jq -c . "$TMP/catchup-$label.json" >&2
  jq -nc --arg lbl "$label" --argjson backlog "$(cat "$TMP/backlog-$label.json")" \
    --argjson watch "$(cat "$TMP/catchup-$label.json")" --argjson ticks "$ticks" --argjson hz "$CLK_TCK" \
    --arg applied "$applied" --arg first_assigned_ms "$assigned_ms" --arg load "$load" \
    --arg backlog_cmd "$(printf '%q ' "${backlog_cmd[@]}")" --arg watch_cmd "$(printf '%q ' "${watch_cmd[@]}")" \
    '{label: $lbl, backlog: ($backlog | del(.high_watermarks)), watch: $watch,
      cpu_s: ($ticks / $hz), applied_messages: ($applied | tonumber),
      first_partition_assigned_ms: ($first_assigned_ms | tonumber), loadavg: $load,
      backlog_cmd: $backlog_cmd, watch_cmd: $watch_cmd}' >>"$TMP/catchup.jsonl"
  stop_node "$c_pid"
}

: >"$TMP/catchup.jsonl"
catch_up "$CATCHUP_RECORDS_PER_MESSAGE" "$CATCHUP_RECORDS" "$CATCHUP_RECORDS_PER_MESSAGE" 1
if ((CATCHUP1_RECORDS > 0)); then
  # One record per message: one record of each partition per request (16 messages per request).
  catch_up 1 "$CATCHUP1_RECORDS" 1 "$PARTITIONS"
fi
# --- d. growth -----------------------------------------------------------------------------
: >"$TMP/growth.jsonl"
if ((GROWTH_ROUNDS > 0)); then
  ns="${RUN_ID}_g"
  log "d. growth node (group g1) on $A_API/$A_INT, namespace $ns: $GROWTH_ROUNDS rounds of $GROWTH_RECORDS records"
  kafka_node start_listening g "$A_API" "$A_INT" "$ns" g1
  G_PID=$NODE_PID
  wait_http_200 "http://$HOST:$A_API/readyz" 60
  for round in $(seq 1 "$GROWTH_ROUNDS"); do
    GROWTH_CMD=(deno run --allow-net=127.0.0.1 --allow-env bench/backlog.ts
      --url "http://$HOST:$A_API" --records "$GROWTH_RECORDS" --records-per-message 100
      --messages-per-request 1 --partitions "$PARTITIONS" --concurrency "$BACKLOG_CONCURRENCY"
      --prefix "g$round" --timeout-s 900)
    read -r dw0 db0 df0 < <(disk_sample "$DISK")
    t0=$(proc_ticks "$G_PID")
    io0=$(proc_write_bytes "$G_PID")
    # shellcheck disable=SC2046
    timeout 960 $(client_prefix) "${GROWTH_CMD[@]}" >"$TMP/growth-$round.json" ||
      die "growth round $round failed"
    read -r dw1 db1 df1 < <(disk_sample "$DISK")
    t1=$(proc_ticks "$G_PID")
    io1=$(proc_write_bytes "$G_PID")
    alive "$G_PID"
    appended=$(metric_value "http://$HOST:$A_INT/metrics" firescroll_log_appends_total)
    applied=$(metric_value "http://$HOST:$A_INT/metrics" firescroll_apply_messages_total)
    jq -c --argjson round "$round" --argjson ticks "$((t1 - t0))" --argjson hz "$CLK_TCK" \
      --argjson dw "$((dw1 - dw0))" --argjson db "$((db1 - db0))" --argjson df "$((df1 - df0))" \
      --argjson io "$((io1 - io0))" --arg appended "$appended" --arg applied "$applied" \
      --arg load "$(loadavg)" --arg du "$(du -sm "$NODE_DB" | cut -f1)" \
      '{round: $round, records: .records, seconds: .seconds, records_per_s: .records_per_s,
        cpu_us_per_record: ($ticks / $hz * 1e6 / .records | round),
        cpu_pct: ($ticks / $hz * 100 / .seconds | round),
        disk_flushes_per_s: ($df / .seconds | round), disk_writes_per_s: ($dw / .seconds | round),
        disk_bytes_per_record: ($db / .records | round), node_bytes_per_record: ($io / .records | round),
        unapplied_at_end: (($appended | tonumber) - ($applied | tonumber)), db_mb: ($du | tonumber),
        loadavg: $load}' "$TMP/growth-$round.json" | tee -a "$TMP/growth.jsonl" >&2
  done
  stop_node "$G_PID"
fi

LOAD_END=$(loadavg)

PROBE_END=$(cpu_probe)
elapsed=$((SECONDS - started_s))

# --- report ---------------------------------------------------------------------------------
m() { jq -r ".$1" "$TMP/machine.json"; }
p() { jq -r "$1" "$TMP/propagation.json"; }
cmd() { printf '%q ' "$@" | sed -e "s|$TMP|\$TMP|g" -e 's/ $//' -e 's/--pid [0-9]*/--pid $A_PID/'; }
echo "### Kafka: acknowledged writes (raw kafkajs, KafkaLog.append, node; pinned and unpinned), propagation, catch-up, growth ($(m date))"
echo
echo "Machine: $(m nproc) vCPU $(m cpu), $(m mem), Linux $(m kernel); $(m deno). Commit $(m commit)" \
  "($(m src_files_changed) uncommitted changes in src/ and main.ts). CPU probe" \
  "(\`bench/cpu_probe.ts\`, ms, lower is faster): $(m cpu_probe_ms) at start, $PROBE_END at the end. Broker: Apache Kafka 3.9" \
  "(KRaft, one broker, \`scripts/kafka.sh\`) on $KAFKA_ADDR, on the same machine as the nodes and" \
  "the clients. PARTITIONS=$PARTITIONS; nodes on 127.0.0.1, DB_PATH on $(m tmp_fs) (device" \
  "${DISK:-unknown}; the broker's data may share it), fresh" \
  "namespaces \`${RUN_ID}_*\`. Load average (1/5/15 min): $LOAD_START at start, $LOAD_END at" \
  "the end. Whole script: $elapsed s. Run with \`bash bench/kafka.sh\` (knobs in the script's" \
  "header; this run: WRITE_DURATION_S=$WRITE_DURATION_S KAFKA_PIN_MODES=\"$KAFKA_PIN_MODES\"" \
  "GROWTH_ROUNDS=$GROWTH_ROUNDS GROWTH_RECORDS=$GROWTH_RECORDS PROP_COUNT=$PROP_COUNT" \
  "PROP_RATE=$PROP_RATE CATCHUP_RECORDS=$CATCHUP_RECORDS" \
  "CATCHUP_RECORDS_PER_MESSAGE=$CATCHUP_RECORDS_PER_MESSAGE CATCHUP1_RECORDS=$CATCHUP1_RECORDS)."
echo
note=$(start_retries_note)
[[ -z "$note" ]] || { echo "$note"; echo; }
echo "#### a. Acknowledged writes through Kafka: raw kafkajs, KafkaLog.append (the ceiling), the node"
echo
echo "Each mode of KAFKA_PIN_MODES in turn; pinned = the measured process (producer or node)" \
  "alone on CPU ${SERVER_CPU:-1} and the load client on CPU ${CLIENT_CPU:-0} (\`taskset\`); the" \
  "broker's JVM is never pinned. **raw** = kafkajs alone (\`bench/producer.ts --mode raw\`):" \
  "one producer with the settings of src/log/kafka.ts (idempotent, acks -1, explicit partition)," \
  "each writer awaiting its own \`send\` of one message. **append** = the project's" \
  "\`KafkaLog.append\` alone (\`--mode append\`: the log built as the node builds it, started," \
  "never consuming), each writer awaiting one one-message append: the ceiling for this client." \
  "**node** = HTTP one-record puts to node A (replica group g1, alone) through \`bench/write.ts\`;" \
  "a 200 means the message is in Kafka with acks=-1, and node A also consumes and applies" \
  "everything it writes (it owns all $PARTITIONS partitions of g1), so the node CPU includes" \
  "apply. Messages are the node's own for a one-record put (≈ 190 bytes). Per-message CPU of" \
  "raw/append is the producer process's, per put of node the node's (all threads)."
echo
echo "| pinned | writers | raw msgs/s | raw p50 / p99 ms | raw CPU µs/msg | append msgs/s | append p50 / p99 ms | append CPU µs/msg | node records/s | node p50 / p99 ms | node CPU µs/put | **node ÷ append** | target ≥ 0.6 |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
for PIN in $KAFKA_PIN_MODES; do
  jq -rn --arg pin "$([[ $PIN == 1 ]] && echo "yes (CPU ${SERVER_CPU:-1})" || echo no)" \
    --slurpfile raw "$TMP/raw-pin$PIN.json" --slurpfile app "$TMP/append-pin$PIN.json" \
    --slurpfile node "$TMP/write-pin$PIN.json" '
    def n(x): if x == null then "–" else (x | round | tostring) end;
    ($node[0] | map(select(.recordsPerRequest == 1))) as $nodes |
    $app[0][] as $a | ($raw[0][] | select(.concurrency == $a.concurrency)) as $r |
    ($nodes[] | select(.concurrency == $a.concurrency)) as $w |
    ($w.records / $w.seconds) as $nps | ($nps / $a.per_s) as $ratio |
    "| \($pin) | \($a.concurrency) | \($r.per_s) | \($r.p50) / \($r.p99) | \($r.cpu_us_per_message) | \($a.per_s) | \($a.p50) / \($a.p99) | \($a.cpu_us_per_message) | \(n($nps)) | \($w.p50 * 100 | round / 100) / \($w.p99 * 100 | round / 100) | \(n($w.nodeCpuUsPerPut)) | **\($ratio * 100 | round / 100)** | \(if $ratio >= 0.6 then "met" else "not met" end) |"'
done
echo
echo "Errors (raw, append): $(jq -rs 'map(.[] | select(.errors > 0) | "\(.mode) c\(.concurrency): \(.errors) (\(.firstError))") | if length == 0 then "none" else join("; ") end' "$TMP"/raw-pin*.json "$TMP"/append-pin*.json)."
echo
echo '```sh'
cmd "${PRODUCER_CMD[@]}" | sed -e 's/--mode append/--mode raw|append/' -e "s/${RUN_ID}_append[0-9]/\$NS/"
echo
cmd "${WRITE_CMD[@]}"
echo
echo '```'
for PIN in $KAFKA_PIN_MODES; do
  echo
  lv=LOAD_A_$PIN
  if [[ "$PIN" == 1 ]]; then
    echo "Node A pinned (node on CPU ${SERVER_CPU:-1}, client on CPU ${CLIENT_CPU:-0}); load average before: ${!lv}."
  else
    echo "Node A unpinned; load average before: ${!lv}."
  fi
  echo
  cat "$TMP/write-pin$PIN.md"
done
echo
echo "The group-commit columns belong to the embedded log (here appends/commit = messages per produce"
echo "request). Disk columns: /proc/diskstats of ${DISK:-the DB_PATH device} during the run (the whole"
echo "device, so the broker's writes count when its data shares it); node bytes written/record is the"
echo "node's own \`write_bytes\` (/proc/PID/io)."
echo
echo "#### b. Propagation: acknowledged on A (g1) → readable on B (g2)"
echo
echo "Load average before: $LOAD_B. B (unpinned unless PIN=1) started after part a's last mode and caught up with its writes in" \
  "$((B_READY_MS / 1000)).$(printf '%03d' $((B_READY_MS % 1000))) s (process start → /readyz 200)." \
  "Then $(p .warmup) warm-up writes, then $(p .count) measured writes at $(p .rate)/s (open loop," \
  "achieved $(p .achieved_rate)/s, $(p .skipped) skipped for too many in flight, errors" \
  "$(p '.errors | tostring')). Each: put one new key to A; on the ack, get it from B with" \
  "\`after\` = A's offsets and \`wait_ms\`=5000, which B answers once it has applied the offset."
echo
echo '```sh'
cmd "${PROP_CMD[@]}"
echo
echo '```'
echo
echo "| ms | n | p50 | p90 | p99 | max | mean |"
echo "|---|--:|--:|--:|--:|--:|--:|"
row() {
  jq -r --arg name "$1" ".$2 | \"| \(\$name) | \(.n) | \(.p50) | \(.p90) | \(.p99) | \(.max) | \(.mean) |\"" \
    "$TMP/propagation.json"
}
row "put acknowledged by A" ack_ms
row "**ack → visible on B** (get with after)" propagation_ms
row "put sent → visible on B" write_to_visible_ms
row "control: get with after on B, nothing to wait for (the floor)" control_get_ms
echo
prop_p99=$(p .propagation_ms.p99)
verdict=$(awk -v x="$prop_p99" 'BEGIN {print (x < 100 ? "**met**" : "**not met**")}')
shares=$(p '.apply_lag_shares // {} | to_entries | map("≤ \(.key | ltrimstr("le_")): \(.value * 1000 | round / 10) %") | join(", ")')
echo "B's own view, from its \`firescroll_apply_lag_seconds\` histogram (apply time − the log" \
  "timestamp A set before sending) over the measured writes: mean $(p .apply_lag_mean_ms) ms" \
  "over $(p .apply_lag_samples) messages; share applied within: $shares."
echo
echo "Target p99 ack → visible on B < 100 ms: $verdict (p99 $prop_p99 ms)."
echo
echo "#### c. Catch-up of a new replica group (node C, group g3, empty DB_PATH)"
echo
echo "A writer node (group g1 of a fresh namespace) writes the backlog with bench/backlog.ts" \
  "($BACKLOG_CONCURRENCY requests in flight) and is stopped; no g3 node exists while it is" \
  "written. Then node C starts; times are from the moment the script started C's process." \
  "\"Caught up\" = every partition's applied offset in /internal/status ≥ its high watermark − 1" \
  "(polled every 100 ms). Rates \"from start\" divide by that whole time (Deno start, Kafka" \
  "group join, partition assignment included); \"from assignment\" start at C's first" \
  "\`partition_assigned\` log event; \"steady\" is between 10 % and 90 % of the backlog applied."
echo
echo "| records/message | messages | records | backlog written in | C: status answers | first partition assigned | caught up | /readyz 200 | msgs/s from start | records/s from start | msgs/s from assignment | records/s from assignment | steady msgs/s (10–90 %) | steady records/s | C CPU s | applied msgs (metric) | load before |"
echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
jq -r '
  def s(ms): if ms == null then "–" else "\(ms / 1000 * 100 | round / 100) s" end;
  def rate(n; ms): if ms == null or ms <= 0 then "–" else (n / ms * 1000 | round | tostring) end;
  .backlog as $b | .watch as $w | ($b.records / $b.messages) as $rpm |
  "| \($b.records_per_message) | \($b.messages) | \($b.records) | \(s($b.seconds * 1000)) (\($b.records_per_s) rec/s, \($b.messages_per_s) msg/s) | \(s($w.status_ms)) | \(s(.first_partition_assigned_ms)) | \(s($w.caught_up_ms)) | \(s($w.ready_ms)) | \(rate($b.messages; $w.caught_up_ms)) | \(rate($b.records; $w.caught_up_ms)) | \(rate($b.messages; (if $w.caught_up_ms == null then null else $w.caught_up_ms - .first_partition_assigned_ms end))) | \(rate($b.records; (if $w.caught_up_ms == null then null else $w.caught_up_ms - .first_partition_assigned_ms end))) | \($w.steady_messages_per_s // "–") | \(if $w.steady_messages_per_s == null then "–" else ($w.steady_messages_per_s * $rpm | round) end) | \(.cpu_s) | \(.applied_messages) | \(.loadavg) |"
' "$TMP/catchup.jsonl"
echo
echo "Commands (per row: the backlog writer against the writer node, then the watcher of node C):"
echo
echo '```sh'
jq -r '.backlog_cmd, .watch_cmd' "$TMP/catchup.jsonl" | sed -e "s|$TMP|\$TMP|g" -e 's/ $//' \
  -e 's/--t0-ms [0-9]*/--t0-ms $C_START_MS/'
echo '```'
echo
best=$(jq -s '[.[] | (.backlog.records / ((.watch.caught_up_ms - .first_partition_assigned_ms) / 1000))] | max | round' "$TMP/catchup.jsonl")
echo "Target ≥ 50,000 mutations (records) applied per second: best records/s from assignment" \
  "$best — see the table for which shape meets it."

if [[ -s "$TMP/growth.jsonl" ]]; then
  echo
  echo "#### d. Growth: $GROWTH_ROUNDS rounds of $GROWTH_RECORDS records on the same node"
  echo
  echo "One node (group g1 of namespace \`${RUN_ID}_g\`$([[ $PIN_REST == 1 ]] && echo ", pinned")) takes" \
    "every round; each round writes $GROWTH_RECORDS new records as 100-record puts (all in one" \
    "partition: one log message per put) with $BACKLOG_CONCURRENCY in flight (\`bench/backlog.ts\`)." \
    "The node consumes and applies as it goes; \"unapplied at end\" = its appended − applied" \
    "messages when the round's last put was acknowledged. No slowdown = records/s flat across rounds."
  echo
  echo '```sh'
  cmd "${GROWTH_CMD[@]}" | sed -e 's/--prefix g[0-9]*/--prefix g$ROUND/'
  echo
  echo '```'
  echo
  echo "| round | records | seconds | records/s acked | ÷ round 1 | node CPU % | node CPU µs/record | disk flushes/s | disk writes/s | disk bytes/record | node bytes written/record | unapplied msgs at end | DB_PATH MB after | load |"
  echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
  jq -rs '.[0].records_per_s as $first | .[] |
    "| \(.round) | \(.records) | \(.seconds) | \(.records_per_s) | \(.records_per_s / $first * 100 | round / 100) | \(.cpu_pct) | \(.cpu_us_per_record) | \(.disk_flushes_per_s) | \(.disk_writes_per_s) | \(.disk_bytes_per_record) | \(.node_bytes_per_record) | \(.unapplied_at_end) | \(.db_mb) | \(.loadavg) |"' \
    "$TMP/growth.jsonl"
fi
