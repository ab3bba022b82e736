#!/usr/bin/env bash
# A simulated deployment of regions at different distances from the broker. The broker is its own
# (scripts/kafka.sh with KAFKA_DIR=$TMP/kafka). Each far region gets a listener advertised at a
# toxiproxy port that adds its RTT (scripts/toxiproxy.sh), so its node reaches the broker only
# through that proxy. A writer node sits next to the broker (RTT 0). One node per region; for each:
#
#   - time to serve: process start → /readyz 200, on an empty disk, while the writer's backlog of
#     BACKLOG one-record messages waits in the log;
#   - idle CPU: % of a core over IDLE_S seconds with nothing written;
#   - propagation: bench/propagation.ts writes PROP_COUNT new keys to the writer at PROP_RATE/s
#     (open loop, after PROP_WARMUP) and reads each on the region's node with `after` → ack →
#     visible p50/p99/max, and their ratio to the region's RTT;
#   - writer ack latency during that run (the writer is the same for every region);
#   - JoinGroup requests at the end: 2 is one healthy join, more mean an eviction or a rebalance.
#
# Prints one JSON line per region and a Markdown table.
#
# Knobs (env): RTTS="0 50 100 200" (ms, one region each; 0 = no proxy) BACKLOG=20000
#   PROP_COUNT=1000 PROP_RATE=200 PROP_WARMUP=100 IDLE_S=10 PARTITIONS=16
#   REGION_ENV="KEY=VALUE ..." (more settings for the region nodes, e.g. KAFKA_SESSION_TIMEOUT_MS)
#   ISOLATE=1 (broker, writer and load client on CPU 0; toxiproxy and region nodes on CPU 1)
#   GEO_KAFKA_PORT=19192 (+1 controller, +3 SASL, +9+i region i's listener)
#   GEO_PROXY_PORT=19301 (+i region i's proxy) GEO_NODE_PORT=28380 (writer +0/+1, region i
#   +10(i+1)/+10(i+1)+1, all on 127.0.0.1)
# Usage: RTTS="0 100 200" bash bench/geo.sh > geo.md

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

read -r -a RTT_LIST <<<"${RTTS:-0 50 100 200}"
read -r -a REGION_ENV_LIST <<<"${REGION_ENV:-}"
BACKLOG=${BACKLOG:-20000}
PROP_COUNT=${PROP_COUNT:-1000}
PROP_RATE=${PROP_RATE:-200}
PROP_WARMUP=${PROP_WARMUP:-100}
IDLE_S=${IDLE_S:-10}
export PARTITIONS=${PARTITIONS:-16}
GK=${GEO_KAFKA_PORT:-19192}
PP=${GEO_PROXY_PORT:-19301}
NP=${GEO_NODE_PORT:-28380}
HOST=127.0.0.1

need deno curl jq go java

listeners=()
for i in "${!RTT_LIST[@]}"; do
  ((RTT_LIST[i] > 0)) && listeners+=("R$i:$((GK + 9 + i)):$((PP + i))")
done
geo_broker_start "$GK" "$(IFS=,; echo "${listeners[*]}")"
seeds=()
for i in "${!RTT_LIST[@]}"; do
  if ((RTT_LIST[i] > 0)); then
    region_proxy "geo_r$i" "$HOST:$((PP + i))" "$HOST:$((GK + 9 + i))" "${RTT_LIST[i]}"
    seeds+=("$HOST:$((PP + i))")
  else
    seeds+=("$HOST:$GK")
  fi
done

# ISOLATE=1: the broker, the writer and the load client on CPU 0, toxiproxy and the region nodes on
# CPU 1 (taskset, every thread). What the regions then cost the writer is what they ask of the
# broker, not the CPU they take from it: the issue's "writers never slowed by readers".
isolate() {
  [[ "${ISOLATE:-0}" == 1 ]] || return 0
  taskset -a -p -c "$1" "$2" >/dev/null || die "cannot pin $2 to CPU $1"
}
isolate 0 "$(cat "$TMP/kafka/kafka.pid")"
if [[ -f "$ROOT/.cache/toxiproxy-run/toxiproxy.pid" ]]; then
  isolate 1 "$(cat "$ROOT/.cache/toxiproxy-run/toxiproxy.pid")"
fi
LOAD_PREFIX=""
[[ "${ISOLATE:-0}" == 1 ]] && LOAD_PREFIX="taskset -c 0"

NS="${RUN_ID}_geo"
log "writer node (next to the broker) writes a backlog of $BACKLOG messages to $NS"
spawn_node writer "$HOST" "$NP" "$((NP + 1))" KAFKA_SEEDS="$HOST:$GK" NAMESPACE="$NS" \
  REPLICA_GROUP=writer INSTANCE_ID=writer PARTITIONS="$PARTITIONS"
WRITER_PID=$NODE_PID
isolate 0 "$WRITER_PID"
wait_http_200 "http://$HOST:$NP/readyz" 120
write_backlog "http://$HOST:$NP" "$BACKLOG"

# Start every region's node at once, as a deploy would, and time each to /readyz.
region_pids=()
for i in "${!RTT_LIST[@]}"; do
  api=$((NP + 10 * (i + 1)))
  spawn_node "r$i" "$HOST" "$api" "$((api + 1))" KAFKA_SEEDS="${seeds[i]}" NAMESPACE="$NS" \
    REPLICA_GROUP="r$i" INSTANCE_ID="r$i" PARTITIONS="$PARTITIONS" "${REGION_ENV_LIST[@]}"
  region_pids+=("$NODE_PID")
  isolate 1 "$NODE_PID"
  echo "$NODE_T0_MS" >"$TMP/r$i.t0"
done
for i in "${!RTT_LIST[@]}"; do
  api=$((NP + 10 * (i + 1)))
  wait_http_200 "http://$HOST:$api/readyz" 300
  echo "$(($(date +%s%3N) - $(cat "$TMP/r$i.t0")))" >"$TMP/r$i.ready"
done
# The regions were polled one after another: a later one may have been ready before it was asked.
log "all regions serve; measuring idle CPU for $IDLE_S s"
for i in "${!RTT_LIST[@]}"; do proc_ticks "${region_pids[i]}" >"$TMP/r$i.c0"; done
sleep "$IDLE_S"
for i in "${!RTT_LIST[@]}"; do proc_ticks "${region_pids[i]}" >"$TMP/r$i.c1"; done

for i in "${!RTT_LIST[@]}"; do
  api=$((NP + 10 * (i + 1)))
  log "region $i (RTT ${RTT_LIST[i]} ms): propagation, $PROP_COUNT writes at $PROP_RATE/s"
  # shellcheck disable=SC2086
  timeout $(((PROP_COUNT + PROP_WARMUP) / PROP_RATE + 120)) $LOAD_PREFIX deno run --allow-net=127.0.0.1 \
    bench/propagation.ts --write-url "http://$HOST:$NP" --read-url "http://$HOST:$api" \
    --count "$PROP_COUNT" --rate "$PROP_RATE" --warmup "$PROP_WARMUP" >"$TMP/p$i.json" ||
    die "propagation.ts failed for region $i"
  # JoinGroup requests so far: 2 for the one join of a healthy start (the first is answered
  # MEMBER_ID_REQUIRED); more mean the node was evicted from its group, or the group rebalanced.
  joins=$(curl -fsS "http://$HOST:$((api + 1))/metrics" | awk '
    /^firescroll_kafka_requests_total\{client="consumer",api="JoinGroup"\}/ {n = $2}
    END {print n + 0}')
  idle=$(awk -v a="$(cat "$TMP/r$i.c0")" -v b="$(cat "$TMP/r$i.c1")" -v hz="$CLK_TCK" \
    -v s="$IDLE_S" 'BEGIN {printf "%.2f", 100 * (b - a) / hz / s}')
  jq -c --argjson region "$i" --argjson rtt "${RTT_LIST[i]}" \
    --argjson ready "$(cat "$TMP/r$i.ready")" --argjson idle "$idle" --argjson joins "$joins" \
    '{region: $region, rtt_ms: $rtt, ready_ms: $ready, idle_cpu_pct: $idle, join_requests: $joins,
      propagation_ms: (.propagation_ms | {p50, p99, max}), writer_ack_ms: (.ack_ms | {p50, p99})}' \
    "$TMP/p$i.json" | tee -a "$TMP/geo.jsonl"
done

for pid in "${region_pids[@]}"; do stop_node "$pid"; done
stop_node "$WRITER_PID"

echo
echo "| region RTT ms | ready after ms (empty disk, $BACKLOG-message backlog) | idle CPU % of a core | ack → visible p50 / p99 / max ms | p50 ÷ RTT | p99 ÷ RTT | writer ack p50 / p99 ms | JoinGroup requests |"
echo "|--:|--:|--:|--:|--:|--:|--:|--:|"
jq -r 'def ratio(x): if .rtt_ms == 0 then "–" else (x / .rtt_ms * 100 | round / 100) end;
  "| \(.rtt_ms) | \(.ready_ms) | \(.idle_cpu_pct) | \(.propagation_ms.p50) / \(.propagation_ms.p99) / \(.propagation_ms.max) | \(ratio(.propagation_ms.p50)) | \(ratio(.propagation_ms.p99)) | \(.writer_ack_ms.p50) / \(.writer_ack_ms.p99) | \(.join_requests) |"' \
  "$TMP/geo.jsonl"
