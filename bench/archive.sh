#!/usr/bin/env bash
# Log archive benchmark (issue 15; `bash bench/backup.sh archive` runs it too), embedded nodes on
# 127.0.0.1 and the real test S3 server (scripts/s3.sh, versitygw; started if not running):
#
#   1. CPU the archive adds to a 64-writer write load: fresh nodes (16 partitions, BACKUP=1,
#      BACKUP_INTERVAL_SEC one week so no snapshot runs) with ARCHIVE=0 and ARCHIVE=1 in turn,
#      ROUNDS rounds (order alternating), pinned (node on CPU $SERVER_CPU, client on $CLIENT_CPU)
#      and unpinned. Each: bench/write.ts, 64 writers × 1 record per put for WRITE_S seconds; the
#      node's CPU (all threads, /proc) from just before the load until TAIL_S after it (the
#      archive's last segments close ARCHIVE_SEGMENT_SEC + 1 s after their bucket), per
#      acknowledged put.
#   2. Bytes uploaded per hour, snapshot-only vs incremental, and archive lag: one partition
#      seeded with RECORDS records (bench/seed.ts), the node restarted on it with BACKUP=1
#      ARCHIVE=1 (default BACKUP_INTERVAL_SEC=300, ARCHIVE_SEGMENT_SEC=10): its first backup is
#      the full snapshot (its bytes from `backup_done`); then bench/archive_lag.ts puts 100
#      updates/s for LAG_S seconds and measures ack → archived for every put and the archive's
#      bytes. Snapshot-only = a snapshot every BACKUP_INTERVAL_SEC (the offset always moves at
#      100 writes/s); incremental = the archive + a full snapshot whenever the segments since
#      reach BACKUP_FULL_PERCENT (25 %) of it, or daily.
#   3. Restore replay speed: one partition written by 64 writers (1 record per put, REPLAY_S
#      seconds), archived (no snapshot), restored with `deno task restore --to latest`: messages
#      replayed per second of replay (download, verify, apply), pinned and unpinned, with the
#      change log and history as a node keeps them by default, REPLAY_ROUNDS rounds in turn:
#      S3_RESTORE_DECODE=auto (a decoding thread when two CPUs are free: unpinned), =inline
#      (unpinned only: pinned, auto is inline), and with BASE=<checkout> that checkout's restore
#      of the same archive (a `git worktree` of the commit before a change); then once without
#      the change log and history (HISTORY_RETAIN_SEC=0 WATCH_RETAIN_SEC=0).
#   4. A whole node's restore: NODE_PARTS partitions written by 64 writers for NODE_REPLAY_S
#      seconds, archived, restored with `deno task restore --partition all --to latest` once with
#      S3_RESTORE_THREADS=1 (one partition after the other) and once with the default (one per
#      CPU the process may use): messages replayed per second of the command's wall time.
#
# The S3 server (versitygw) is moved to the client's CPU: S3 is another machine in production.
#
# Prints a Markdown block for bench/RESULTS.md on stdout; progress on stderr. Objects of the run
# are deleted at the end unless KEEP_DATA=1.
#
# Knobs (env): PARTS="1 2 3 4" ROUNDS=3 WRITE_S=10 TAIL_S=13 RECORDS=1000000 LAG_S=60 REPLAY_S=20
#   REPLAY_ROUNDS=3 BASE= NODE_PARTS=4 NODE_REPLAY_S=40
#   ARCHIVE_BENCH_API_PORT=28890 ARCHIVE_BENCH_INTERNAL_PORT=28891 KEEP_TMP=1 KEEP_DATA=1
# Usage: bash bench/archive.sh > archive.md

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PARTS=${PARTS:-1 2 3 4}
part() { [[ " $PARTS " == *" $1 "* ]]; }
ROUNDS=${ROUNDS:-3}
WRITE_S=${WRITE_S:-10}
TAIL_S=${TAIL_S:-13}
RECORDS=${RECORDS:-1000000}
LAG_S=${LAG_S:-60}
REPLAY_S=${REPLAY_S:-20}
REPLAY_ROUNDS=${REPLAY_ROUNDS:-3}
BASE=${BASE:-}
[[ -z "$BASE" || -f "$BASE/src/backup/restore_main.ts" ]] || die "BASE=$BASE is not a checkout"
NODE_PARTS=${NODE_PARTS:-4}
NODE_REPLAY_S=${NODE_REPLAY_S:-40}
API=${ARCHIVE_BENCH_API_PORT:-28890}
INT=${ARCHIVE_BENCH_INTERNAL_PORT:-28891}

need deno curl jq taskset
ensure_s3
# S3 is another machine in production: here its server shares the client's CPU, not the node's.
for pid in $(pgrep -f versitygw || true); do taskset -pc "${CLIENT_CPU:-0}" "$pid" >/dev/null || true; done
machine_json >"$TMP/machine.json"
LOAD_START=$(loadavg)
S3_ENV=(S3_ENDPOINT="$S3_URL" S3_BUCKET="$S3_BUCKET_NAME" S3_REGION=us-east-1
  AWS_ACCESS_KEY_ID=firescroll AWS_SECRET_ACCESS_KEY=firescroll-secret)
export S3_ENDPOINT="$S3_URL" S3_BUCKET="$S3_BUCKET_NAME" S3_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=firescroll AWS_SECRET_ACCESS_KEY=firescroll-secret

# wait_archived SECONDS [PARTITIONS]: waits until the node on $INT archived partitions 0..N-1
# (default 1) up to their offsets.
wait_archived() {
  local applied p deadline=$((SECONDS + $1))
  for ((p = 0; p < ${2:-1}; p++)); do
    applied=$(curl -s "http://127.0.0.1:$INT/internal/status" | jq ".partitions[\"$p\"].offset")
    while (($(metric_value "http://127.0.0.1:$INT/metrics" "firescroll_archive_offset{partition=\"$p\"}") < applied)); do
      ((SECONDS < deadline)) || die "the archive of p$p did not reach offset $applied within $1 s"
      sleep 0.5
    done
  done
}

# --- 1. CPU per put, archive off vs on --------------------------------------------------------

echo '[]' >"$TMP/cpu.json"
part 1 && for PIN in 1 0; do
  for ((r = 1; r <= ROUNDS; r++)); do
    order="0 1"
    ((r % 2 == 0)) && order="1 0"
    for A in $order; do
      ns="${RUN_ID}_cpu_p${PIN}r${r}a${A}"
      log "1. PIN=$PIN round $r ARCHIVE=$A"
      start_node "cpu-$ns" "$API" "$INT" NAMESPACE="$ns" PARTITIONS=16 BACKUP=1 ARCHIVE="$A" \
        BACKUP_INTERVAL_SEC=604800 ARCHIVE_SEGMENT_SEC=10 "${S3_ENV[@]}"
      t0=$(proc_ticks "$NODE_PID")
      # shellcheck disable=SC2046
      $(client_prefix) deno run --allow-all bench/write.ts --url "http://127.0.0.1:$API" \
        --metrics-url "http://127.0.0.1:$INT/metrics" --concurrency 64 --records-per-request 1 \
        --duration-s "$WRITE_S" --partitions 16 --pid "$NODE_PID" --json "$TMP/w.json" \
        >/dev/null || die "write load failed"
      sleep "$TAIL_S"
      t1=$(proc_ticks "$NODE_PID")
      bytes=$(metric_value "http://127.0.0.1:$INT/metrics" firescroll_archive_uploaded_bytes_total)
      alive "$NODE_PID"
      stop_node "$NODE_PID"
      jq --argjson pin "$PIN" --argjson r "$r" --argjson a "$A" --argjson ticks "$((t1 - t0))" \
        --argjson hz "$CLK_TCK" --argjson bytes "${bytes:-0}" --slurpfile w "$TMP/w.json" \
        '. + [{pin: $pin, round: $r, archive: $a, records: $w[0][0].records,
          records_per_s: ($w[0][0].records / $w[0][0].seconds),
          cpu_us_per_put: ($ticks / $hz * 1e6 / $w[0][0].records),
          cpu_us_per_put_load_only: $w[0][0].nodeCpuUsPerPut, archive_bytes: $bytes}]' \
        "$TMP/cpu.json" >"$TMP/cpu.next" && mv "$TMP/cpu.next" "$TMP/cpu.json"
    done
  done
done
PIN=0

# --- 2. bytes per hour and archive lag ---------------------------------------------------------

echo '{}' >"$TMP/lag.json"
SNAPSHOT_BYTES=0
part 2 && {
ns="${RUN_ID}_lag"
log "2. seeding $RECORDS records into one partition"
start_node "lag-seed" "$API" "$INT" NAMESPACE="$ns" PARTITIONS=1
seed_db="$TMP/lag-seed-db"
deno run --allow-net=127.0.0.1 --allow-env bench/seed.ts --url "http://127.0.0.1:$API" \
  --records "$RECORDS" --batch 500 --concurrency 4 --partitions 1 \
  --status-url "http://127.0.0.1:$INT/internal/status" >&2 || die "seeding failed"
stop_node "$NODE_PID"
log "2. restarting it with BACKUP=1 ARCHIVE=1"
(
  exec env -u KAFKA_SEEDS LISTEN_HOST=127.0.0.1 API_PORT="$API" INTERNAL_PORT="$INT" \
    DB_PATH="$seed_db" NAMESPACE="$ns" PARTITIONS=1 BACKUP=1 ARCHIVE=1 ARCHIVE_SEGMENT_SEC=10 \
    "${S3_ENV[@]}" deno run --allow-all main.ts
) >"$TMP/lag-node.log" 2>&1 &
NODE_PID=$!
STARTED_PIDS+=("$NODE_PID")
wait_log_event "$TMP/lag-node.log" backup_done "$NODE_PID" 300
SNAPSHOT_BYTES=$(event_field "$TMP/lag-node.log" backup_done bytes)
# The archive starts at offset 0 (the embedded log keeps everything): the seed's messages go up
# first, before the measured window.
wait_archived 300
log "2. full snapshot: $SNAPSHOT_BYTES bytes; 100 puts/s for $LAG_S s"
deno run --allow-all bench/archive_lag.ts --url "http://127.0.0.1:$API" \
  --metrics-url "http://127.0.0.1:$INT/metrics" --namespace "$ns" --partitions 1 --rate 100 \
  --duration-s "$LAG_S" --keys "$RECORDS" --json "$TMP/lag.json" >&2 || die "lag probe failed"
stop_node "$NODE_PID"
}

# --- 3. replay speed -----------------------------------------------------------------------

echo '[]' >"$TMP/replay.json"
part 3 && for PIN in 1 0; do
  ns="${RUN_ID}_replay_p$PIN"
  log "3. PIN=$PIN: $REPLAY_S s of 64 writers into one partition, archived"
  start_node "replay-$ns" "$API" "$INT" NAMESPACE="$ns" PARTITIONS=1 BACKUP=1 ARCHIVE=1 \
    BACKUP_INTERVAL_SEC=604800 ARCHIVE_SEGMENT_SEC=2 "${S3_ENV[@]}"
  # shellcheck disable=SC2046
  $(client_prefix) deno run --allow-all bench/write.ts --url "http://127.0.0.1:$API" \
    --metrics-url "http://127.0.0.1:$INT/metrics" --concurrency 64 --records-per-request 1 \
    --duration-s "$REPLAY_S" --partitions 1 --json "$TMP/rw.json" >/dev/null ||
    die "write load failed"
  wait_archived 60
  stop_node "$NODE_PID"
  # restore_once TREE DECODE HISTORY ROUND: one restore of the archive by TREE's code; its line,
  # labelled, joins replay.json. DECODE "-" passes no S3_RESTORE_DECODE (a base may not know it).
  restore_once() {
    local tree=$1 decode=$2 h=$3 round=$4 out="$TMP/restored-p$PIN-$RANDOM" vars=()
    [[ "$decode" != - ]] && vars+=(S3_RESTORE_DECODE="$decode")
    [[ "$h" == 0 ]] && vars+=(HISTORY_RETAIN_SEC=0 WATCH_RETAIN_SEC=0)
    # shellcheck disable=SC2046
    (cd "$tree" && env NAMESPACE="$ns" PARTITIONS=1 "${vars[@]}" $(server_prefix) deno run \
      --allow-all src/backup/restore_main.ts --partition 0 --to latest --out "$out") \
      >"$TMP/restore.json" || die "restore failed ($tree)"
    rm -rf "$out"
    jq --argjson pin "$PIN" --arg h "$h" --arg tree "$([[ "$tree" == . ]] && echo new || echo base)" \
      --arg decode "$decode" --argjson round "$round" --slurpfile x "$TMP/restore.json" \
      '. + [$x[-1] + {pin: $pin, history: $h, tree: $tree, decode: $decode, round: $round}]' \
      "$TMP/replay.json" >"$TMP/replay.next" && mv "$TMP/replay.next" "$TMP/replay.json"
  }
  # The change log and history on (HISTORY_RETAIN_SEC's default), the sides in turn.
  sides=("new auto")
  [[ "$PIN" == 0 ]] && sides+=("new inline")
  [[ -n "$BASE" ]] && sides+=("base -")
  for ((r = 1; r <= REPLAY_ROUNDS; r++)); do
    # Words: code, decode, code, decode, …; every other round backwards.
    # shellcheck disable=SC2207
    if ((r % 2 == 1)); then order=($(printf '%s\n' "${sides[@]}"))
    else order=($(printf '%s\n' "${sides[@]}" | tac)); fi
    for ((i = 0; i < ${#order[@]}; i += 2)); do
      tree=.
      [[ "${order[i]}" == base ]] && tree=$BASE
      log "3. PIN=$PIN round $r: ${order[i]} ${order[i + 1]}"
      restore_once "$tree" "${order[i + 1]}" default "$r"
    done
  done
  # Without them: apply's share of the replay.
  restore_once . auto 0 1
done
PIN=0

# --- 4. a whole node's restore, one partition at a time vs one per CPU -------------------------

echo '[]' >"$TMP/node_restore.json"
part 4 && for PIN in 1 0; do
  ns="${RUN_ID}_noderestore_p$PIN"
  log "4. PIN=$PIN: $NODE_REPLAY_S s of 64 writers into $NODE_PARTS partitions, archived"
  start_node "noderestore-$ns" "$API" "$INT" NAMESPACE="$ns" PARTITIONS="$NODE_PARTS" BACKUP=1 \
    ARCHIVE=1 BACKUP_INTERVAL_SEC=604800 ARCHIVE_SEGMENT_SEC=2 "${S3_ENV[@]}"
  # shellcheck disable=SC2046
  $(client_prefix) deno run --allow-all bench/write.ts --url "http://127.0.0.1:$API" \
    --metrics-url "http://127.0.0.1:$INT/metrics" --concurrency 64 --records-per-request 1 \
    --duration-s "$NODE_REPLAY_S" --partitions "$NODE_PARTS" --json "$TMP/rw.json" >/dev/null ||
    die "write load failed"
  wait_archived 120 "$NODE_PARTS"
  stop_node "$NODE_PID"
  # S3_RESTORE_THREADS=1: one partition after the other; 0 (the default): one per CPU the
  # process may use (1 when pinned to one core).
  for T in 1 0; do
    out="$TMP/node-restored-p$PIN-t$T"
    t0=$(date +%s.%N)
    # shellcheck disable=SC2046
    env NAMESPACE="$ns" PARTITIONS="$NODE_PARTS" S3_RESTORE_THREADS="$T" $(server_prefix) \
      deno run --allow-all src/backup/restore_main.ts --partition all --to latest --out "$out" \
      >"$TMP/node_restore.lines" || die "restore failed"
    t1=$(date +%s.%N)
    jq -s --argjson pin "$PIN" --argjson t "$T" --argjson wall "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" \
      '{pin: $pin, threads: $t, partitions: length, replayed: (map(.replayed) | add), wall_s: $wall,
        per_partition: (map(.replayed_per_second) | sort)}' "$TMP/node_restore.lines" >"$TMP/nr.json"
    jq --slurpfile x "$TMP/nr.json" '. + $x' "$TMP/node_restore.json" >"$TMP/node_restore.next" &&
      mv "$TMP/node_restore.next" "$TMP/node_restore.json"
    rm -rf "$out"
  done
done
PIN=0
LOAD_END=$(loadavg)

# --- report -----------------------------------------------------------------------------------

m() { jq -r ".$1" "$TMP/machine.json"; }
median() { jq -s 'sort | if length == 0 then null else .[(length - 1) / 2 | floor] end'; }
cpu_of() { jq ".[] | select(.pin == $1 and .archive == $2) | .$3" "$TMP/cpu.json" | median; }
echo "### Log archive: CPU, bytes per hour, lag, restore replay ($(m date))"
echo
echo "Machine: $(m nproc) vCPU $(m cpu), $(m mem), Linux $(m kernel); $(m deno). Commit $(m commit)" \
  "($(m src_files_changed) uncommitted changes in src/ and main.ts). Load average at start:" \
  "$LOAD_START, at the end: $LOAD_END. Embedded-log nodes on 127.0.0.1, S3 = versitygw on the" \
  "same machine (its CPU is not the node's and is not counted). Run with \`bash bench/archive.sh\`" \
  "(ROUNDS=$ROUNDS WRITE_S=$WRITE_S TAIL_S=$TAIL_S RECORDS=$RECORDS LAG_S=$LAG_S REPLAY_S=$REPLAY_S NODE_PARTS=$NODE_PARTS NODE_REPLAY_S=$NODE_REPLAY_S PARTS=\"$PARTS\")."
if part 1; then
  echo
  echo "**1. CPU the archive adds to 64 writers** (16 partitions, 1 record per put, ${WRITE_S} s of load;"
  echo "node CPU from the load's start to ${TAIL_S} s after it, per acknowledged put; medians of $ROUNDS rounds,"
  echo "archive off and on alternating):"
  echo
  echo "| mode | archive | puts/s | node CPU µs/put (load + tail) | µs/put during the load | archive bytes |"
  echo "| ---- | ------- | -----: | ----------------------------: | ---------------------: | ------------: |"
  for PIN in 1 0; do
    for A in 0 1; do
      printf '| %s | %s | %.0f | %.1f | %.1f | %s |\n' "$([[ $PIN == 1 ]] && echo pinned || echo unpinned)" \
        "$([[ $A == 1 ]] && echo on || echo off)" "$(cpu_of "$PIN" "$A" records_per_s)" \
        "$(cpu_of "$PIN" "$A" cpu_us_per_put)" "$(cpu_of "$PIN" "$A" cpu_us_per_put_load_only)" \
        "$(cpu_of "$PIN" "$A" archive_bytes)"
    done
  done
  echo
  for PIN in 1 0; do
    ratio=$(awk -v on="$(cpu_of "$PIN" 1 cpu_us_per_put)" -v off="$(cpu_of "$PIN" 0 cpu_us_per_put)" \
      'BEGIN {printf "%.3f", on / off}')
    echo "- $([[ $PIN == 1 ]] && echo pinned || echo unpinned): CPU per put on ÷ off = **$ratio** (target ≤ 1.05)."
  done
  echo "- Every round: \`$(jq -c '[.[] | {pin, round, archive, us: (.cpu_us_per_put | floor)}]' "$TMP/cpu.json")\`"
  echo
fi
if part 2; then
  LAG=$(cat "$TMP/lag.json")
  l() { jq -r ".$1" <<<"$LAG"; }
  SNAP_H=$(awk -v b="$SNAPSHOT_BYTES" 'BEGIN {printf "%.0f", b * 3600 / 300}')
  ARCH_H=$(l archive_bytes_per_hour)
  INCR_H=$(awk -v s="$SNAPSHOT_BYTES" -v a="$ARCH_H" 'BEGIN {
    hours = (a > 0 ? 0.25 * s / a : 24); if (hours > 24) hours = 24;
    printf "%.0f", a + s / hours }')
  echo "**2. Bytes per hour, one partition of $RECORDS records at 100 writes/s** (full snapshot:"
  echo "$SNAPSHOT_BYTES bytes; $(l puts) puts over $(l seconds) s measured, $(l archive_bytes) archive bytes ="
  echo "$(l archive_bytes_per_put | xargs printf '%.1f') bytes per put):"
  echo
  echo "| backups | bytes per hour |"
  echo "| ------- | -------------: |"
  echo "| snapshot-only (a snapshot every BACKUP_INTERVAL_SEC=300) | $SNAP_H |"
  echo "| incremental (archive + a full snapshot when the segments reach 25 % of it) | $INCR_H (archive $(printf '%.0f' "$ARCH_H")) |"
  echo
  echo "- Incremental ÷ snapshot-only: **$(awk -v a="$SNAP_H" -v b="$INCR_H" 'BEGIN {printf "%.1f", a / b}')× less** (target ≥ 20×)."
  echo "- Archive lag, ack → archived, every put: p50 $(l lag_ms.p50 | xargs printf '%.0f') ms, **p99 $(l lag_ms.p99 | xargs printf '%.0f') ms**," \
    "max $(l lag_ms.max | xargs printf '%.0f') ms; $(l unarchived) never archived (target p99 ≤ ARCHIVE_SEGMENT_SEC + 5 s = 15 s)."
  echo
fi
if part 3; then
  echo
  echo "**3. Restore replay** (\`deno task restore --to latest\`, no snapshot: every message from the archive;"
  echo "medians of $REPLAY_ROUNDS rounds, sides in turn$([[ -n "$BASE" ]] && echo "; base = $(git -C "$BASE" rev-parse --short HEAD)"), change log and history on unless said):"
  echo
  echo "| mode | code | S3_RESTORE_DECODE | change log and history | messages replayed | segments decoded in a worker | messages/s (median) | every round |"
  echo "| ---- | ---- | ----------------- | ---------------------- | ----------------: | ---------------------------: | ------------------: | ----------- |"
  jq -r 'group_by([.pin, .tree, .decode, .history]) | sort_by(-.[0].pin, .[0].history != "default", .[0].tree != "new", .[0].decode) | .[]
    | (map(.replayed_per_second) | sort) as $v
    | "| \(if .[0].pin == 1 then "pinned" else "unpinned" end) | \(.[0].tree) | \(.[0].decode) | \(if .[0].history == "0" then "off" else "on" end) | \(.[0].replayed) | \(map(.segments_decoded_in_worker // "-" | tostring) | join(", ")) | **\($v[(($v | length) - 1) / 2 | floor])** | \(map(.replayed_per_second | tostring) | join(", ")) |"' "$TMP/replay.json"
  echo
  echo "Target ≥ 100k messages/s."
  echo
fi
if part 4; then
  echo
  echo "**4. A whole node's restore** (\`deno task restore --partition all --to latest\`, $NODE_PARTS partitions"
  echo "written by 64 writers for $NODE_REPLAY_S s, no snapshot; wall time of the command, start-up included):"
  echo
  echo "| mode | S3_RESTORE_THREADS | partitions | messages replayed | wall s | messages/s | per partition, messages/s of its replay |"
  echo "| ---- | ------------------ | ---------: | ----------------: | -----: | ---------: | --------------------------------------- |"
  jq -r '.[] | "| \(if .pin == 1 then "pinned" else "unpinned" end) | \(if .threads == 0 then "0 (one per CPU)" else "1" end) | \(.partitions) | \(.replayed) | \(.wall_s * 1000 | round / 1000) | **\(.replayed / .wall_s | round)** | \(.per_partition | map(tostring) | join(", ")) |"' "$TMP/node_restore.json"
fi
