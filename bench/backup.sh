#!/usr/bin/env bash
# Backup and restore benchmark, on the real test broker (scripts/kafka.sh) and the real test S3
# server (scripts/s3.sh, versitygw; each started if not running, then stopped at the end). One
# partition (PARTITIONS=1) holding RECORDS records, all on 127.0.0.1:
#
#   1. seed: a node (group b1, no backups) takes RECORDS records in puts of SEED_BATCH records
#      (bench/seed.ts; every put is one log message) and applies them; it is stopped.
#   2. backup: the same node restarts on its data with BACKUP=1 BACKUP_INTERVAL_SEC=2; its first
#      backup round after the partition serves copies (LMDB compacting copy), hashes and uploads
#      the partition → the `backup_done` event (bytes, seconds) and the
#      firescroll_backup_duration_seconds histogram. Control: plain curl GET and PUT of the same
#      object against the same S3 server.
#   3. restore: stop, wipe DB_PATH, start with S3_RESTORE=1 (same group) → restore time = from
#      the restored file's creation (its inode's birth time: the download starts) to the
#      `partition_restored` event; and process start → /readyz 200.
#   4. a new replica group (b2) with S3_RESTORE=1 vs another (b3) with S3_RESTORE=0 (replays the
#      whole log): process start → partition caught up and /readyz 200 (bench/catchup.ts).
#
# Prints a Markdown block for bench/RESULTS.md on stdout; progress on stderr. Topics and objects
# of the run are deleted at the end unless KEEP_DATA=1.
#
# Knobs (env): RECORDS=1000000 SEED_BATCH=500 SEED_CONCURRENCY=4 BACKUP_WAIT_S=600
#   BACKUP_BENCH_API_PORT=28790 BACKUP_BENCH_INTERNAL_PORT=28791 PIN=1 KEEP_TMP=1 KEEP_DATA=1
# Usage: bash bench/backup.sh > backup.md

# `bash bench/backup.sh archive`: the log archive's benchmark (bench/archive.sh) instead.
if [[ "${1:-}" == archive ]]; then exec bash "$(dirname "${BASH_SOURCE[0]}")/archive.sh"; fi

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RECORDS=${RECORDS:-1000000}
SEED_BATCH=${SEED_BATCH:-500}
SEED_CONCURRENCY=${SEED_CONCURRENCY:-4}
BACKUP_WAIT_S=${BACKUP_WAIT_S:-600}
API=${BACKUP_BENCH_API_PORT:-28790}
INT=${BACKUP_BENCH_INTERNAL_PORT:-28791}
HOST=127.0.0.1
NODE_URL="http://$HOST:$API"
METRICS="http://$HOST:$INT/metrics"

need deno curl jq stat
ensure_kafka
ensure_s3
machine_json >"$TMP/machine.json"
LOAD_START=$(loadavg)
NS="${RUN_ID}_bk"
started_s=$SECONDS
S3_ENV=(S3_ENDPOINT="$S3_URL" S3_BUCKET="$S3_BUCKET_NAME" S3_REGION=us-east-1
  AWS_ACCESS_KEY_ID=firescroll AWS_SECRET_ACCESS_KEY=firescroll-secret)

# backup_node START NAME GROUP [VAR=VALUE...]: START (spawn_node, or start_listening to also
# wait for the node to listen) a Kafka node of the namespace, one partition.
backup_node() {
  local start=$1 name=$2 group=$3
  shift 3
  "$start" "$name" "$HOST" "$API" "$INT" KAFKA_SEEDS="$KAFKA_ADDR" NAMESPACE="$NS" \
    REPLICA_GROUP="$group" INSTANCE_ID="$name" PARTITIONS=1 "$@"
}

ms_since() { echo $(($(date +%s%3N) - $1)); }
secs() { awk -v ms="$1" 'BEGIN {printf "%.2f", ms / 1000}'; }
mbps() { awk -v b="$1" -v ms="$2" 'BEGIN {printf "%.1f", (ms > 0 ? b / 1e6 / (ms / 1000) : 0)}'; }

# --- 1. seed ----------------------------------------------------------------------------------
log "1. seeding node (group b1, no backups), namespace $NS: $RECORDS records, $SEED_BATCH per put"
backup_node start_listening s1 b1
S_PID=$NODE_PID
S_DB=$NODE_DB
wait_http_200 "$NODE_URL/readyz" 60
SEED_CMD=(deno run --allow-net=127.0.0.1 --allow-env bench/seed.ts --url "$NODE_URL"
  --records "$RECORDS" --partitions 1 --batch "$SEED_BATCH" --concurrency "$SEED_CONCURRENCY"
  --timeout-s 900 --catch-up-timeout-s 600 --status-url "http://$HOST:$INT/internal/status")
timeout 960 "${SEED_CMD[@]}" >"$TMP/seed.json" || die "seeding failed"
cat "$TMP/seed.json" >&2
OFFSET=$(curl -s --max-time 5 "http://$HOST:$INT/internal/status" | jq '.partitions["0"].offset')
HELD=$(curl -s --max-time 5 "http://$HOST:$INT/internal/status" | jq '.partitions["0"].records')
echo "{\"high_watermarks\":{\"0\":$((OFFSET + 1))}}" >"$TMP/targets.json"
stop_node "$S_PID"
DB_FILE="$S_DB/$NS/p0.mdb"
[[ -f "$DB_FILE" ]] || die "no partition file $DB_FILE"
DB_BYTES=$(stat -c %s "$DB_FILE")
DB_DISK_KB=$(du -k "$DB_FILE" | cut -f1)
log "partition 0: offset $OFFSET, $HELD records, file $DB_BYTES bytes ($DB_DISK_KB KiB on disk)"

# --- 2. backup --------------------------------------------------------------------------------
log "2. restarting it with BACKUP=1 BACKUP_INTERVAL_SEC=2"
LOAD_BACKUP=$(loadavg)
backup_node spawn_node s1b b1 DB_PATH="$S_DB" BACKUP=1 ARCHIVE=0 BACKUP_INTERVAL_SEC=2 "${S3_ENV[@]}"
B_PID=$NODE_PID
B_LOG=$NODE_LOG
wait_log_event "$B_LOG" backup_done "$B_PID" "$BACKUP_WAIT_S"
BACKUP_BYTES=$(event_field "$B_LOG" backup_done bytes)
BACKUP_SECONDS=$(event_field "$B_LOG" backup_done seconds)
BACKUP_OFFSET=$(event_field "$B_LOG" backup_done offset)
HIST_SUM=$(printf "%.3f" "$(metric_value "$METRICS" firescroll_backup_duration_seconds_sum)")
HIST_COUNT=$(metric_value "$METRICS" firescroll_backup_duration_seconds_count)
UPLOADED=$(metric_value "$METRICS" firescroll_backup_uploaded_bytes_total)
B_CPU_TICKS=$(proc_ticks "$B_PID")
sleep 2.5 # one more interval: the next round must skip the unchanged partition
BACKUPS_DONE=$(grep -c '"event":"backup_done"' "$B_LOG" || true)
stop_node "$B_PID"
log "backup: $BACKUP_BYTES bytes in $BACKUP_SECONDS s (histogram sum $HIST_SUM s / count $HIST_COUNT)"

SNAP_KEY="$NS/p0/$(printf '%020d' "$BACKUP_OFFSET").mdb"
# Controls: the same object through curl, to tell the S3 server's speed from the node's.
GET_STATS=$(s3_curl -o "$TMP/control.mdb" -w '%{time_total} %{size_download}' \
  "$S3_URL/$S3_BUCKET_NAME/$SNAP_KEY")
PUT_STATS=$(curl -sS --max-time 300 --aws-sigv4 "aws:amz:us-east-1:s3" \
  --user firescroll:firescroll-secret -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
  -o /dev/null -w '%{time_total} %{size_upload}' -T "$TMP/control.mdb" \
  "$S3_URL/$S3_BUCKET_NAME/$NS/control/put.mdb")
SHA_MS=$({ /usr/bin/time -f '%e' sha256sum "$TMP/control.mdb" >/dev/null; } 2>&1 | awk '{print $1 * 1000}')
rm -f "$TMP/control.mdb"
log "controls: curl GET $GET_STATS, curl PUT $PUT_STATS, sha256sum ${SHA_MS} ms"

# --- 3. restore after a wipe ------------------------------------------------------------------
# restore_node NAME GROUP VAR=VALUE...: starts a node with an empty DB_PATH, watches it until it
# has the whole partition and is ready, and appends a JSON line to $TMP/restore.jsonl.
: >"$TMP/restore.jsonl"
restore_node() {
  local name=$1 group=$2
  shift 2
  local load
  load=$(loadavg)
  log "$name: group $group, empty DB_PATH, $*"
  backup_node spawn_node "$name" "$group" "$@"
  local pid=$NODE_PID node_log=$NODE_LOG t0=$NODE_T0_MS db=$NODE_DB
  timeout 660 deno run --allow-net=127.0.0.1 --allow-read="$TMP" bench/catchup.ts \
    --status-url "http://$HOST:$INT/internal/status" --ready-url "$NODE_URL/readyz" \
    --targets "$TMP/targets.json" --t0-ms "$t0" --interval-ms 100 --timeout-s 600 \
    >"$TMP/watch-$name.json" || die "$name did not catch up"
  alive "$pid"
  local restored_ms="" born_ms="" ticks
  restored_ms=$(event_ms "$node_log" partition_restored || true)
  if [[ -n "$restored_ms" ]]; then
    # The restored file is the downloaded one renamed: its inode was born when the download began.
    born_ms=$(date -d "$(stat -c %w "$db/$NS/p0.mdb")" +%s%3N 2>/dev/null || true)
  fi
  ticks=$(proc_ticks "$pid")
  jq -nc --arg name "$name" --arg group "$group" --arg env "$*" --arg load "$load" \
    --argjson watch "$(cat "$TMP/watch-$name.json")" --arg t0 "$t0" \
    --arg restored "${restored_ms:-}" --arg born "${born_ms:-}" --argjson ticks "$ticks" \
    --argjson hz "$CLK_TCK" \
    '{name: $name, group: $group, env: $env, loadavg: $load, watch: $watch,
      restored_after_ms: (if $restored == "" then null else ($restored | tonumber) - ($t0 | tonumber) end),
      download_started_after_ms: (if $born == "" then null else ($born | tonumber) - ($t0 | tonumber) end),
      cpu_s: ($ticks / $hz)}' >>"$TMP/restore.jsonl"
  stop_node "$pid"
}

log "3. wipe and restore (same group b1)"
rm -rf "$S_DB"
restore_node r1 b1 S3_RESTORE=1 "${S3_ENV[@]}"
log "4. new replica groups: b2 from the snapshot, b3 by replaying the log"
restore_node n2 b2 S3_RESTORE=1 "${S3_ENV[@]}"
restore_node n3 b3 S3_RESTORE=0
LOAD_END=$(loadavg)
elapsed=$((SECONDS - started_s))

# --- report -----------------------------------------------------------------------------------
m() { jq -r ".$1" "$TMP/machine.json"; }
r() { jq -r --arg n "$1" "select(.name == \$n) | $2" "$TMP/restore.jsonl"; }
backup_ms=$(awk -v s="$BACKUP_SECONDS" 'BEGIN {printf "%d", s * 1000}')
read -r get_s get_bytes <<<"$GET_STATS"
read -r put_s put_bytes <<<"$PUT_STATS"
get_ms=$(awk -v s="$get_s" 'BEGIN {printf "%d", s * 1000}')
put_ms=$(awk -v s="$put_s" 'BEGIN {printf "%d", s * 1000}')
restore_ms=$(($(r r1 .restored_after_ms) - $(r r1 .download_started_after_ms)))
echo "### Backup to S3, restore, and a new replica group: snapshot vs log replay ($(m date))"
echo
echo "Machine: $(m nproc) vCPU $(m cpu), $(m mem), Linux $(m kernel); $(m deno). Commit $(m commit)" \
  "($(m src_files_changed) uncommitted changes in src/ and main.ts). Broker: Apache Kafka 3.9" \
  "(KRaft, one broker, \`scripts/kafka.sh\`) on $KAFKA_ADDR; S3: versitygw (posix backend," \
  "\`scripts/s3.sh\`) on $S3_URL, bucket $S3_BUCKET_NAME; both on this machine, DB_PATH and the" \
  "S3 data on $(m tmp_fs). Nodes on 127.0.0.1, PARTITIONS=1, namespace \`$NS\`. Load average" \
  "(1/5/15 min): $LOAD_START at start, $LOAD_END at the end. Whole script: $elapsed s. Run with" \
  "\`bash bench/backup.sh\` (RECORDS=$RECORDS SEED_BATCH=$SEED_BATCH)."
echo
note=$(start_retries_note)
[[ -z "$note" ]] || { echo "$note"; echo; }
echo "**Data.** $(jq -r .records "$TMP/seed.json") records (≈100 bytes of JSON each, keys" \
  "\`user-<i>\`/\`profile\`) written in puts of $SEED_BATCH (one log message each, $((OFFSET + 1))" \
  "messages) at $(jq -r .records_per_s "$TMP/seed.json") records/s acknowledged; applied" \
  "$(jq -r .catch_up_s "$TMP/seed.json") s after the last ack. Partition 0: offset $OFFSET," \
  "$HELD records, LMDB file $DB_BYTES bytes ($DB_DISK_KB KiB allocated on disk)."
echo
echo '```sh'
printf '%q ' "${SEED_CMD[@]}" | sed 's/ $//'
echo
echo '```'
echo
echo "**Backup** (node restarted on that file with BACKUP=1 BACKUP_INTERVAL_SEC=2; load average" \
  "before: $LOAD_BACKUP). One backup: LMDB compacting copy → sha256 → multipart upload (8 MiB" \
  "parts, 2 in flight) → manifest and latest.json. $BACKUPS_DONE backup_done event(s) in the" \
  "node's life (the next rounds skip an unchanged partition); node CPU over its whole life" \
  "(start, catch-up check, backup): $(awk -v t="$B_CPU_TICKS" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", t / hz}') s."
echo
echo "| | bytes | seconds | MB/s |"
echo "|---|--:|--:|--:|"
echo "| \`backup_done\` event (copy + hash + upload + manifests + prune) | $BACKUP_BYTES | $(secs "$backup_ms") | **$(mbps "$BACKUP_BYTES" "$backup_ms")** |"
echo "| \`firescroll_backup_duration_seconds\` histogram: sum / count | | $HIST_SUM / $HIST_COUNT | |"
echo "| \`firescroll_backup_uploaded_bytes_total\` | $UPLOADED | | |"
echo "| control: \`curl\` GET of the snapshot object | $get_bytes | $(secs "$get_ms") | $(mbps "$get_bytes" "$get_ms") |"
echo "| control: \`curl\` PUT of the same bytes (single PUT, unsigned payload) | $put_bytes | $(secs "$put_ms") | $(mbps "$put_bytes" "$put_ms") |"
echo "| control: \`sha256sum\` of the snapshot | $get_bytes | $(secs "$SHA_MS") | $(mbps "$get_bytes" "$SHA_MS") |"
echo
echo "**Restore and new replicas.** Each node starts with an empty DB_PATH; times are from the" \
  "moment the script started its process. \"Download began\" is the birth time of the restored" \
  "file's inode (the node downloads to a new file and renames it into place); \"restored\" is the" \
  "\`partition_restored\` event (after download, sha256 and meta verification). \"Caught up\" is" \
  "the first 100 ms status poll at offset $OFFSET; \"ready\" is /readyz 200."
echo
echo "| node | group | settings | download began | restored | restore (download + verify) | restore MB/s | caught up | **ready** | node CPU s | load before |"
echo "|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|"
jq -r --arg bytes "$BACKUP_BYTES" '
  def s(ms): if ms == null then "–" else "\(ms / 10 | round / 100) s" end;
  (if .restored_after_ms == null or .download_started_after_ms == null then null else .restored_after_ms - .download_started_after_ms end) as $r |
  "| \(.name) | \(.group) | \(.env | gsub("(S3_ENDPOINT|S3_BUCKET|S3_REGION|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY)=[^ ]*"; "") | gsub(" +"; " ") | rtrimstr(" ")) | \(s(.download_started_after_ms)) | \(s(.restored_after_ms)) | \(s($r)) | \(if $r == null or $r <= 0 then "–" else ($bytes | tonumber) / 1e6 / ($r / 1000) * 10 | round / 10 end) | \(s(.watch.caught_up_ms)) | **\(s(.watch.ready_ms))** | \(.cpu_s) | \(.loadavg) |"
' "$TMP/restore.jsonl"
echo
snap=$(r n2 .watch.ready_ms)
replay=$(r n3 .watch.ready_ms)
echo "r1 = the wiped node (same group b1, S3_RESTORE=1); n2 = a new replica group from the" \
  "snapshot; n3 = a new replica group replaying all $((OFFSET + 1)) log messages" \
  "($HELD records). A new replica serves the partition after $(secs "$snap") s from the" \
  "snapshot vs $(secs "$replay") s by replaying the log" \
  "($(awk -v a="$replay" -v b="$snap" 'BEGIN {printf "%.1f", (b > 0 ? a / b : 0)}')× as long;" \
  "replay applied $(awk -v n="$HELD" -v ms="$(r n3 .watch.caught_up_ms)" 'BEGIN {printf "%d", (ms > 0 ? n / (ms / 1000) : 0)}')" \
  "records/s from process start). Restore of the wiped node: $(secs "$restore_ms") s for" \
  "$BACKUP_BYTES bytes."
echo
echo "The watcher of each restore/replay node:"
echo
echo '```sh'
echo "deno run --allow-net=127.0.0.1 --allow-read=\$TMP bench/catchup.ts --status-url http://$HOST:$INT/internal/status --ready-url $NODE_URL/readyz --targets \$TMP/targets.json --t0-ms \$NODE_START_MS --interval-ms 100 --timeout-s 600"
echo '```'
