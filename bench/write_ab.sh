#!/usr/bin/env bash
# A/B of the embedded write path: the node of this checkout ("new") against the node of another
# checkout (BASE_TREE, e.g. a worktree of an older commit: "base"), in the same run, alternating
# the order each round (A B, B A, ...) so that drift of a shared machine favours neither. Each
# round and side: a fresh embedded node (PARTITIONS partitions, empty DB_PATH), a warm-up of
# WARMUP_S seconds of 64 one-record writers (not reported), then bench/write.ts closed-loop writers
# for each of WRITERS × RECORDS_PER_REQUEST → records/s, ack p50/p99, node CPU per put, disk
# flushes/s, apply messages per transaction.
#
# The clients always come from this checkout; only the nodes differ. Prints one JSON line per
# round, side and shape on stdout (with bench/cpu_probe.ts taken just before the side: how fast the
# machine was), and a Markdown table of the medians and new ÷ base ratios last.
#
# Knobs (env): BASE_TREE (required) ROUNDS=3 WRITERS=64 RECORDS_PER_REQUEST=1,100
#   WRITE_DURATION_S=8 WARMUP_S=5 PARTITIONS=16 AB_PORT_BASE=28800 (API +0, internal +1 on
#   127.0.0.1) PIN=1 (node on SERVER_CPU, client on CLIENT_CPU) KEEP_TMP=1
# Usage: BASE_TREE=/work/wt-base PIN=1 bash bench/write_ab.sh > ab.md

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -n "${BASE_TREE:-}" && -f "${BASE_TREE}/main.ts" ]] || die "BASE_TREE must name a checkout"
BASE_TREE=$(cd "$BASE_TREE" && pwd)
export PARTITIONS=${PARTITIONS:-16}
ROUNDS=${ROUNDS:-3}
WRITERS=${WRITERS:-64}
RECORDS_PER_REQUEST=${RECORDS_PER_REQUEST:-1,100}
WRITE_DURATION_S=${WRITE_DURATION_S:-8}
WARMUP_S=${WARMUP_S:-5}
PB=${AB_PORT_BASE:-28800}
HOST=127.0.0.1
DEVICE=$(disk_device "$TMP")

need deno curl jq

# side ROUND LABEL TREE: one measurement; appends JSON lines to $TMP/ab.jsonl.
side() {
  local round=$1 label=$2 tree=$3 db="$TMP/db-$1-$2"
  local probe
  probe=$(cpu_probe)
  log "round $round, $label ($tree), CPU probe $probe ms"
  port_free "$PB"
  port_free "$((PB + 1))"
  mkdir -p "$db"
  (
    cd "$tree"
    # shellcheck disable=SC2046
    exec env -i PATH="$PATH" HOME="$HOME" ${DENO_DIR:+DENO_DIR="$DENO_DIR"} \
      LISTEN_HOST="$HOST" API_PORT="$PB" INTERNAL_PORT="$((PB + 1))" DB_PATH="$db" \
      PARTITIONS="$PARTITIONS" $(server_prefix) deno run --allow-all main.ts
  ) >"$TMP/n$round$label.log" 2>&1 &
  local pid=$!
  STARTED_PIDS+=("$pid")
  wait_log_event "$TMP/n$round$label.log" api_listening "$pid" 90
  wait_http_200 "http://$HOST:$PB/readyz" 120
  local common=(--url "http://$HOST:$PB" --metrics-url "http://$HOST:$((PB + 1))/metrics"
    --partitions "$PARTITIONS" --pid "$pid")
  [[ -n "$DEVICE" ]] && common+=(--disk-device "$DEVICE")
  # shellcheck disable=SC2046
  timeout $((WARMUP_S + 120)) $(client_prefix) deno run --allow-all bench/write.ts "${common[@]}" \
    --concurrency 64 --records-per-request 1 --duration-s "$WARMUP_S" >/dev/null 2>&1 ||
    die "warm-up failed"
  # shellcheck disable=SC2046
  timeout $((WRITE_DURATION_S * 8 + 300)) $(client_prefix) deno run --allow-all bench/write.ts \
    "${common[@]}" --concurrency "$WRITERS" --records-per-request "$RECORDS_PER_REQUEST" \
    --duration-s "$WRITE_DURATION_S" --json "$TMP/w$round$label.json" \
    >/dev/null 2>"$TMP/w$round$label.err" || die "write.ts failed (see $TMP/w$round$label.err)"
  stop_node "$pid"
  jq -c --arg side "$label" --argjson round "$round" --arg probe "$probe" \
    '.[] | {side: $side, round: $round, cpu_probe_ms: $probe, rpr: .recordsPerRequest, writers: .concurrency,
      records_s: (.records / .seconds), p50_ms: .p50, p99_ms: .p99, errors: .errors,
      node_cpu_us_per_put: .nodeCpuUsPerPut, flushes_s: .diskFlushesPerS,
      apply_msgs_per_txn: .applyMessagesPerTransaction}' \
    "$TMP/w$round$label.json" | tee -a "$TMP/ab.jsonl"
}

ab_rounds "$ROUNDS" side "$BASE_TREE"

jq -rs "$JQ_MED"'
  def r(x): if x == null then "–" else (x * 100 | round) / 100 end;
  def stats: {records_s: (map(.records_s) | med), p50: (map(.p50_ms) | med),
    p99: (map(.p99_ms) | med), cpu: (map(.node_cpu_us_per_put) | med),
    flushes: (map(.flushes_s) | med), mpt: (map(.apply_msgs_per_txn) | med)};
  "| records/request × writers (medians of \(map(.round) | unique | length) rounds) | side | records/s | ack p50 ms | ack p99 ms | node CPU µs/put | disk flushes/s | apply msgs/txn |",
  "|---|---|--:|--:|--:|--:|--:|--:|",
  (group_by([.rpr, .writers])[] | . as $g |
    ([$g[] | select(.side == "base")] | stats) as $b |
    ([$g[] | select(.side == "new")] | stats) as $n |
    "| \($g[0].rpr) × \($g[0].writers) | base | \($b.records_s | round) | \(r($b.p50)) | \(r($b.p99)) | \($b.cpu | round) | \($b.flushes | round) | \(r($b.mpt)) |",
    "| | new | \($n.records_s | round) | \(r($n.p50)) | \(r($n.p99)) | \($n.cpu | round) | \($n.flushes | round) | \(r($n.mpt)) |",
    "| | **new ÷ base** | **\(r($n.records_s / $b.records_s))** | \(r($n.p50 / $b.p50)) | \(r($n.p99 / $b.p99)) | \(r($n.cpu / $b.cpu)) | \(r($n.flushes / $b.flushes)) | |")
' "$TMP/ab.jsonl"
