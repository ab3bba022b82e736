#!/usr/bin/env bash
# Start-up of a far region: how long a node whose every Kafka round trip takes RTT_MS needs to
# serve, on an empty disk and on its own data, and how many Kafka requests it made
# (`firescroll_kafka_requests_total`). The first piece of the far-regions benchmark.
#
#   1. A broker of its own (scripts/kafka.sh with KAFKA_DIR=$TMP/kafka and ports GEO_KAFKA_PORT..
#      +3) with one extra listener advertised at a toxiproxy port (scripts/toxiproxy.sh), which
#      adds RTT_MS per round trip: a client that connects there reaches the broker only through
#      the proxy.
#   2. A near node (no proxy) creates the namespace and writes RECORDS one-record messages.
#   3. For ROUNDS rounds, alternating the order of the trees (this checkout "new", and BASE_TREE
#      "base" when given): a far node on an empty DB_PATH until /readyz is 200, stopped, then
#      started again on that DB_PATH ("local data").
#
# Prints one JSON line per start and a Markdown table of the medians.
#
# Knobs (env): RTT_MS=200 RECORDS=20000 ROUNDS=2 PARTITIONS=16 BASE_TREE (optional)
#   GEO_KAFKA_PORT=19192 (and +1 controller, +3 SASL, +9 the region's listener) GEO_PROXY_PORT=19301
#   FAR_PORT_BASE=28380 (far node API +0 / internal +1; the near node +10/+11) on 127.0.0.1
# Usage: RTT_MS=200 bash bench/far_start.sh > far.md

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RTT_MS=${RTT_MS:-200}
RECORDS=${RECORDS:-20000}
ROUNDS=${ROUNDS:-2}
export PARTITIONS=${PARTITIONS:-16}
GK=${GEO_KAFKA_PORT:-19192}
PROXY_PORT=${GEO_PROXY_PORT:-19301}
PB=${FAR_PORT_BASE:-28380}
HOST=127.0.0.1
if [[ -n "${BASE_TREE:-}" ]]; then
  [[ -f "$BASE_TREE/main.ts" ]] || die "BASE_TREE must name a checkout"
  BASE_TREE=$(cd "$BASE_TREE" && pwd)
fi

need deno curl jq go java

geo_broker_start "$GK" "REGION:$((GK + 9)):$PROXY_PORT"
region_proxy far_region "$HOST:$PROXY_PORT" "$HOST:$((GK + 9))" "$RTT_MS"

NS="${RUN_ID}_far"
log "near node writes $RECORDS records to namespace $NS"
spawn_node near "$HOST" "$((PB + 10))" "$((PB + 11))" KAFKA_SEEDS="$HOST:$GK" NAMESPACE="$NS" \
  REPLICA_GROUP=near INSTANCE_ID=near PARTITIONS="$PARTITIONS"
near_pid=$NODE_PID
wait_http_200 "http://$HOST:$((PB + 10))/readyz" 120
write_backlog "http://$HOST:$((PB + 10))" "$RECORDS"
stop_node "$near_pid"

# start_far TREE LABEL DB: one far start; appends a JSON line to $TMP/far.jsonl.
start_far() {
  local tree=$1 label=$2 db=$3 t0 t1 requests
  port_free "$PB"
  port_free "$((PB + 1))"
  mkdir -p "$db"
  t0=$(date +%s%3N)
  (
    cd "$tree"
    exec env -i PATH="$PATH" HOME="$HOME" ${DENO_DIR:+DENO_DIR="$DENO_DIR"} LISTEN_HOST="$HOST" \
      API_PORT="$PB" INTERNAL_PORT="$((PB + 1))" DB_PATH="$db" KAFKA_SEEDS="$HOST:$PROXY_PORT" \
      NAMESPACE="$NS" REPLICA_GROUP=far INSTANCE_ID=far PARTITIONS="$PARTITIONS" \
      deno run --allow-all main.ts
  ) >"$TMP/far-$label.log" 2>&1 &
  local pid=$!
  STARTED_PIDS+=("$pid")
  local deadline=$((SECONDS + 180))
  until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$HOST:$PB/readyz" || true) == 200 ]]; do
    kill -0 "$pid" 2>/dev/null || die "far node $label exited (log: $TMP/far-$label.log)"
    ((SECONDS < deadline)) || die "far node $label not ready within 180 s"
    sleep 0.02
  done
  t1=$(date +%s%3N)
  requests=$(curl -s "http://$HOST:$((PB + 1))/metrics" |
    awk '/^firescroll_kafka_requests_total/ {t += $2; n++} END {print n ? t : "null"}')
  stop_node "$pid"
  jq -nc --arg name "$label" --argjson ms $((t1 - t0)) --argjson requests "$requests" \
    --argjson rtt "$RTT_MS" '{start: $name, rtt_ms: $rtt, ready_ms: $ms, kafka_requests: $requests}' |
    tee -a "$TMP/far.jsonl"
}

# side ROUND LABEL TREE: empty disk, then local data.
side() {
  local db="$TMP/far-db-$1-$2"
  log "round $1, $2 ($3)"
  start_far "$3" "$2-empty" "$db"
  start_far "$3" "$2-local" "$db"
}

ab_rounds "$ROUNDS" side "${BASE_TREE:-}"

jq -rs --argjson rtt "$RTT_MS" --argjson rounds "$ROUNDS" "$JQ_MED"'
  "| start, RTT \($rtt) ms (medians of \($rounds) runs each) | ready after ms | ÷ RTT | Kafka requests |",
  "|---|--:|--:|--:|",
  (group_by(.start)[] | "| \(.[0].start) | \(map(.ready_ms) | med | round) | \((map(.ready_ms) | med) / $rtt * 10 | round / 10) | \(if .[0].kafka_requests == null then "–" else (map(.kafka_requests) | med) end) |")
' "$TMP/far.jsonl"
