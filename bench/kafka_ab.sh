#!/usr/bin/env bash
# A/B of the Kafka write and propagation paths: the node of this checkout ("new") against the
# node of another checkout (BASE_TREE, e.g. a worktree of main: "base"), in the same run,
# alternating the order each round (A B, B A, ...) so that drift of a shared machine favours
# neither. Each round and side, on a fresh namespace of the real test broker:
#
#   1. node A (group g1) alone; bench/write.ts, WRITERS closed-loop writers of 1-record puts for
#      WRITE_DURATION_S → records/s, ack p50/p99, node CPU (from /proc/PID/stat) per put;
#   2. node B (group g2) joins and catches up; bench/propagation.ts (PROP_RATE/s open loop,
#      PROP_COUNT writes to A, each read on B with `after`) → ack → visible p50/p99/max.
#
# The clients always come from this checkout; only the nodes differ. Prints one JSON line per
# round and side on stdout, and a Markdown table of the medians and new ÷ base ratios last.
#
# Knobs (env): BASE_TREE (required) ROUNDS=2 WRITERS=64 WRITE_DURATION_S=10 PROP_COUNT=2000
#   PROP_RATE=200 PROP_WARMUP=200 PARTITIONS=16 AB_PORT_BASE=28900 (A: +0/+1, B: +10/+11 on
#   127.0.0.1) PIN=1 KEEP_TMP=1 KEEP_DATA=1
# Usage: BASE_TREE=/work/wt-main bash bench/kafka_ab.sh > ab.md

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -n "${BASE_TREE:-}" && -f "${BASE_TREE}/main.ts" ]] || die "BASE_TREE must name a checkout"
BASE_TREE=$(cd "$BASE_TREE" && pwd)
export PARTITIONS=${PARTITIONS:-16}
ROUNDS=${ROUNDS:-2}
WRITERS=${WRITERS:-64}
WRITE_DURATION_S=${WRITE_DURATION_S:-10}
PROP_COUNT=${PROP_COUNT:-2000}
PROP_RATE=${PROP_RATE:-200}
PROP_WARMUP=${PROP_WARMUP:-200}
PB=${AB_PORT_BASE:-28900}
HOST=127.0.0.1

need deno curl jq
# The broker must already run (tests and other benchmarks share it): this script never starts or
# stops it, and deletes only its own topics at exit (KEEP_DATA=1 keeps them).
(exec 3<>"/dev/tcp/${KAFKA_ADDR%:*}/${KAFKA_ADDR#*:}") 2>/dev/null || die "no broker on $KAFKA_ADDR"
if [[ "${KEEP_DATA:-0}" != 1 ]]; then CLEANUP_HOOKS+=("delete_topics"); fi

# ab_node TREE NAME API INTERNAL NAMESPACE GROUP: a Kafka node of checkout TREE, in the
# background; sets NODE_PID and NODE_LOG.
ab_node() {
  local tree=$1 name=$2 api=$3 internal=$4 ns=$5 group=$6
  port_free "$api"
  port_free "$internal"
  NODE_LOG="$TMP/$name.log"
  mkdir -p "$TMP/$name-db"
  (
    cd "$tree"
    # shellcheck disable=SC2046
    exec env -i PATH="$PATH" HOME="$HOME" ${DENO_DIR:+DENO_DIR="$DENO_DIR"} \
      LISTEN_HOST="$HOST" API_PORT="$api" INTERNAL_PORT="$internal" DB_PATH="$TMP/$name-db" \
      KAFKA_SEEDS="$KAFKA_ADDR" NAMESPACE="$ns" REPLICA_GROUP="$group" INSTANCE_ID="$name" \
      PARTITIONS="$PARTITIONS" $(server_prefix) deno run --allow-all main.ts
  ) >"$NODE_LOG" 2>&1 &
  NODE_PID=$!
  STARTED_PIDS+=("$NODE_PID")
  wait_log_event "$NODE_LOG" api_listening "$NODE_PID" 90
  wait_http_200 "http://$HOST:$api/readyz" 120
}

# side ROUND LABEL TREE: one measurement; appends a JSON line to $TMP/ab.jsonl.
side() {
  local round=$1 label=$2 tree=$3 ns="${RUN_ID}_ab${1}${2}"
  local probe
  probe=$(cpu_probe)
  log "round $round, $label ($tree): namespace $ns, CPU probe $probe ms"
  ab_node "$tree" "a$round$label" "$PB" "$((PB + 1))" "$ns" g1
  local a_pid=$NODE_PID
  # shellcheck disable=SC2046
  timeout $((WRITE_DURATION_S + 120)) $(client_prefix) deno run --allow-all bench/write.ts \
    --url "http://$HOST:$PB" --metrics-url "http://$HOST:$((PB + 1))/metrics" \
    --concurrency "$WRITERS" --records-per-request 1 --duration-s "$WRITE_DURATION_S" \
    --partitions "$PARTITIONS" --pid "$a_pid" --json "$TMP/w$round$label.json" \
    >/dev/null 2>"$TMP/w$round$label.err" || die "write.ts failed (see $TMP/w$round$label.err)"
  ab_node "$tree" "b$round$label" "$((PB + 10))" "$((PB + 11))" "$ns" g2
  local b_pid=$NODE_PID
  # shellcheck disable=SC2046
  timeout $(((PROP_COUNT + PROP_WARMUP) / PROP_RATE + 120)) $(client_prefix) \
    deno run --allow-net=127.0.0.1 bench/propagation.ts --write-url "http://$HOST:$PB" \
    --read-url "http://$HOST:$((PB + 10))" --count "$PROP_COUNT" --rate "$PROP_RATE" \
    --warmup "$PROP_WARMUP" >"$TMP/p$round$label.json" || die "propagation.ts failed"
  stop_node "$b_pid"
  stop_node "$a_pid"
  jq -c --arg side "$label" --argjson round "$round" --slurpfile p "$TMP/p$round$label.json" \
    --arg probe "$probe" '.[0] | {side: $side, round: $round, cpu_probe_ms: $probe, records_s: (.records / .seconds), p50_ms: .p50,
      p99_ms: .p99, errors: .errors, appends_per_commit: (.appends / .commits),
      node_cpu_us_per_put: (.nodeCpuPct * 10000 * .seconds / .records),
      prop: ($p[0].propagation_ms | {p50, p99, max})}' \
    "$TMP/w$round$label.json" | tee -a "$TMP/ab.jsonl"
}

ab_rounds "$ROUNDS" side "$BASE_TREE"

jq -rs "$JQ_MED"'
  def r(x): (x * 100 | round) / 100;
  def stats(s): [.[] | select(.side == s)] | {
    records_s: (map(.records_s) | med), p50: (map(.p50_ms) | med), p99: (map(.p99_ms) | med),
    cpu: (map(.node_cpu_us_per_put) | med), apc: (map(.appends_per_commit) | med),
    pp50: (map(.prop.p50) | med), pp99: (map(.prop.p99) | med), pmax: (map(.prop.max) | med)};
  stats("new") as $n | stats("base") as $b |
  "| medians of \(length / 2) rounds | records/s | ack p50 ms | ack p99 ms | node CPU µs/put | appends/produce request | prop p50 ms | prop p99 ms | prop max ms |",
  "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
  "| base | \($b.records_s | round) | \(r($b.p50)) | \(r($b.p99)) | \($b.cpu | round) | \(r($b.apc)) | \(r($b.pp50)) | \(r($b.pp99)) | \(r($b.pmax)) |",
  "| new | \($n.records_s | round) | \(r($n.p50)) | \(r($n.p99)) | \($n.cpu | round) | \(r($n.apc)) | \(r($n.pp50)) | \(r($n.pp99)) | \(r($n.pmax)) |",
  "| new ÷ base | \(r($n.records_s / $b.records_s)) | \(r($n.p50 / $b.p50)) | \(r($n.p99 / $b.p99)) | \(r($n.cpu / $b.cpu)) | \(r($n.apc / $b.apc)) | \(r($n.pp50 / $b.pp50)) | \(r($n.pp99 / $b.pp99)) | \(r($n.pmax / $b.pmax)) |"
' "$TMP/ab.jsonl"
