#!/usr/bin/env bash
# Cluster read benchmark: the cost of a proxied read. A region of two nodes (one replica group on
# the real test broker, scripts/kafka.sh; signed UDP gossip with a static GOSSIP_PEERS list) on
# 127.0.0.31 and 127.0.0.32 splits PARTITIONS partitions; RECORDS records are seeded through
# node 1 (bench/seed.ts). bench/cluster_keys.ts splits the seeded keys into those node 1 serves
# itself ("local") and those it proxies to node 2 ("proxied"), and wrk with bench/get_keys.lua
# reads random keys of one list at a time from node 1, alternating for ROUNDS rounds. Reports
# throughput, latency, the ratio proxied ÷ local, CPU of both nodes and the proxy counter.
#
# Knobs (env): PARTITIONS=16 RECORDS=100000 ROUNDS=3 DURATION=10 WARMUP=3 THREADS=1 CONNS=32
#   CLUSTER_HOST1=127.0.0.31 CLUSTER_HOST2=127.0.0.32 CLUSTER_API_PORT=28690
#   CLUSTER_INTERNAL_PORT=28691 CLUSTER_GOSSIP_PORT=28692 PIN=1 KEEP_TMP=1 KEEP_DATA=1
# Usage: bash bench/cluster.sh > cluster.md

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export PARTITIONS=${PARTITIONS:-16}
RECORDS=${RECORDS:-100000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
THREADS=${THREADS:-1}
CONNS=${CONNS:-32}
H1=${CLUSTER_HOST1:-127.0.0.31}
H2=${CLUSTER_HOST2:-127.0.0.32}
API=${CLUSTER_API_PORT:-28690}
INT=${CLUSTER_INTERNAL_PORT:-28691}
GOSSIP=${CLUSTER_GOSSIP_PORT:-28692}
SECRET="bench-cluster-secret-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
SLACK=30

need deno wrk curl jq
ensure_kafka
machine_json >"$TMP/machine.json"
LOAD_START=$(loadavg)
NS="${RUN_ID}_cl"

# cluster_node NAME HOST: a node of the region (replica group g) on HOST; waits until it listens.
cluster_node() {
  start_listening "$1" "$2" "$API" "$INT" KAFKA_SEEDS="$KAFKA_ADDR" NAMESPACE="$NS" REPLICA_GROUP=g \
    REGION=local INSTANCE_ID="$1" PARTITIONS="$PARTITIONS" CLUSTER_SECRET="$SECRET" \
    GOSSIP_PORT="$GOSSIP" GOSSIP_PEERS="$H1:$GOSSIP,$H2:$GOSSIP"
}

status() {
  curl -s --max-time 5 -H "authorization: Bearer $SECRET" "http://$1:$INT/internal/status"
}

log "node 1 on $H1, node 2 on $H2 (ports $API/$INT, gossip $GOSSIP/udp), namespace $NS"
cluster_node n1 "$H1"
N1_PID=$NODE_PID
wait_http_200 "http://$H1:$API/readyz" 60
cluster_node n2 "$H2"
N2_PID=$NODE_PID
wait_http_200 "http://$H2:$API/readyz" 60

# The split: both serve, disjoint, every partition, and each sees the other's serving set.
log "waiting for the two nodes to split the partitions and gossip it"
deadline=$((SECONDS + 90))
while true; do
  s1=$(status "$H1" || true)
  s2=$(status "$H2" || true)
  if jq -en --argjson a "${s1:-null}" --argjson b "${s2:-null}" --argjson n "$PARTITIONS" '
      def serving(s): [s.partitions | to_entries[] | select(.value.state == "serving") | .key | tonumber] | sort;
      def peer(s; id): [s.members[] | select(.id == id and .state == "alive") | .serving] | first;
      serving($a) as $x | serving($b) as $y |
      ($x | length) > 0 and ($y | length) > 0 and (($x + $y) | sort) == [range(0; $n)] and
      peer($a; "n2") == $y and peer($b; "n1") == $x' >/dev/null 2>&1; then
    break
  fi
  ((SECONDS < deadline)) || die "the nodes did not split the partitions within 90 s"
  sleep 0.5
done
SPLIT_1=$(jq -c '[.partitions | to_entries[] | select(.value.state == "serving") | .key | tonumber] | sort' <<<"$s1")
SPLIT_2=$(jq -c '[.partitions | to_entries[] | select(.value.state == "serving") | .key | tonumber] | sort' <<<"$s2")
log "node 1 serves $SPLIT_1, node 2 serves $SPLIT_2"

log "seeding $RECORDS records through node 1"
SEED_CMD=(deno run --allow-net="$H1,$H2" --allow-env bench/seed.ts --url "http://$H1:$API"
  --records "$RECORDS" --partitions "$PARTITIONS")
timeout "${SEED_TIMEOUT_S:-600}" "${SEED_CMD[@]}" >"$TMP/seed.json" || die "seeding failed"
cat "$TMP/seed.json" >&2
held=$(($(status "$H1" | jq '[.partitions[] | select(.state == "serving") | .records] | add') +
  $(status "$H2" | jq '[.partitions[] | select(.state == "serving") | .records] | add')))
log "the two nodes hold $held records"

KEYS_CMD=(deno run --allow-net="$H1,$H2" --allow-write="$TMP" bench/cluster_keys.ts
  --status-url "http://$H1:$INT/internal/status" --secret '$SECRET' --records "$RECORDS"
  --partitions "$PARTITIONS" --local "$TMP/local.txt" --remote "$TMP/remote.txt")
"${KEYS_CMD[@]/\$SECRET/$SECRET}" >"$TMP/keys.json" || die "cannot split the keys"
cat "$TMP/keys.json" >&2

for list in local remote; do
  pk=$(head -n 1 "$TMP/$list.txt")
  answer=$(curl -s --max-time 5 "http://$H1:$API/records/get" \
    -d "{\"records\":[{\"pk\":\"$pk\",\"sk\":\"profile\"}]}")
  jq -e '.records | length == 1' <<<"$answer" >/dev/null || die "sanity get of $list $pk: $answer"
done

PROXY_OK='firescroll_cluster_proxy_requests_total{result="ok"}'
RESULTS="$TMP/cluster.jsonl"
: >"$RESULTS"

# run NAME ROUND LIST: one wrk run against node 1 with the LIST key file; appends a JSON line.
run() {
  local name=$1 round=$2 list=$3 out="$TMP/raw-$1-$2.txt"
  local cmd=(wrk "-t$THREADS" "-c$CONNS" "-d${DURATION}s" --latency -s bench/get_keys.lua
    "http://$H1:$API/" -- "$TMP/$list.txt")
  log "round $round: $name"
  local p0 p1 n2a n2b cpu
  p0=$(metric_value "http://$H1:$INT/metrics" "$PROXY_OK")
  n2a=$(proc_ticks "$N2_PID")
  cpu=$(measure "$out" "$N1_PID" -- timeout $((DURATION + SLACK)) "${cmd[@]}")
  n2b=$(proc_ticks "$N2_PID")
  p1=$(metric_value "http://$H1:$INT/metrics" "$PROXY_OK")
  alive "$N1_PID"
  alive "$N2_PID"
  local bench
  bench=$(grep -m1 '^BENCH_JSON ' "$out" | sed 's/^BENCH_JSON //')
  [[ -n "$bench" ]] || die "no BENCH_JSON in $out"
  jq -nc --arg name "$name" --arg round "$round" --argjson cpu "$cpu" --argjson bench "$bench" \
    --argjson n2 "$((n2b - n2a))" --argjson hz "$CLK_TCK" --argjson proxied "$((p1 - p0))" \
    --arg cmd "$(printf '%q ' "${cmd[@]}")" \
    '{name: $name, round: $round, cmd: $cmd, proxied: $proxied} + $bench + $cpu +
     {node2_cpu_pct: (100 * $n2 / $hz / $cpu.wall_s * 10 | round / 10)}' >>"$RESULTS"
}

log "warm-up: ${WARMUP}s per key list"
for list in local remote; do
  timeout $((WARMUP + SLACK)) wrk "-t$THREADS" "-c$CONNS" "-d${WARMUP}s" -s bench/get_keys.lua \
    "http://$H1:$API/" -- "$TMP/$list.txt" >/dev/null
done
LOAD_RUNS=$(loadavg)
for round in $(seq 1 "$ROUNDS"); do
  if ((round % 2 == 1)); then
    run local "$round" local
    run proxied "$round" remote
  else
    run proxied "$round" remote
    run local "$round" local
  fi
done
LOAD_END=$(loadavg)

# --- report ---------------------------------------------------------------------------------
m() { jq -r ".$1" "$TMP/machine.json"; }
echo "### Cluster: local vs proxied single-key reads in a two-node region ($(m date))"
echo
echo "Machine: $(m nproc) vCPU $(m cpu), $(m mem), Linux $(m kernel); $(m deno). Commit $(m commit)" \
  "($(m src_files_changed) uncommitted changes in src/ and main.ts). Load average (1/5/15 min):" \
  "$LOAD_START at start, $LOAD_RUNS before the measured runs, $LOAD_END at the end. Two nodes" \
  "(one replica group \`g\`, region \`local\`, Kafka log on the test broker $KAFKA_ADDR," \
  "PARTITIONS=$PARTITIONS, CLUSTER_SECRET set, gossip over UDP with" \
  "\`GOSSIP_PEERS=$H1:$GOSSIP,$H2:$GOSSIP\`, default GOSSIP_BROADCAST_MS and PROXY_TIMEOUT_MS)" \
  "on $H1 and $H2. Node 1 serves partitions $SPLIT_1, node 2 serves $SPLIT_2. $RECORDS" \
  "records seeded through node 1 ($(jq -r .records_per_s "$TMP/seed.json") records/s acked;" \
  "the two nodes hold $held). Every load-generator, both nodes and the broker share the" \
  "$(m nproc) CPUs. Run with \`bash bench/cluster.sh\`."
echo
note=$(start_retries_note)
[[ -z "$note" ]] || { echo "$note"; echo; }
echo "Every wrk run targets node 1 with one random seeded key per request from a key list:" \
  "\`local\` = the $(jq -r .local_keys "$TMP/keys.json") keys whose partition node 1 serves" \
  "(answered from its LMDB); \`proxied\` = the $(jq -r .remote_keys "$TMP/keys.json") keys of" \
  "node 2's partitions (node 1 forwards each to node 2's internal port" \
  "\`/internal/records/get\` and relays the answer). $ROUNDS rounds of ${DURATION} s, order" \
  "alternating, after a ${WARMUP} s warm-up per list."
echo
echo '```sh'
printf '%q ' "${SEED_CMD[@]}" | sed 's/ $//'
echo
printf '%q ' "${KEYS_CMD[@]}" | sed -e "s|$TMP|\$TMP|g" -e 's/ $//'
echo
jq -r 'select(.round == "1") | .cmd' "$RESULTS" | sed -e "s|$TMP|\$TMP|g" -e 's/ $//'
echo '```'
echo
echo "| run | round | req/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx/errors | proxied (node 1 counter) | node 1 CPU % | node 1 JS thread % | node 2 CPU % | wrk CPU % | machine busy % |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
jq -r '"| \(.name) | \(.round) | \(.rps | round) | \(.p50_us / 1000) | \(.p90_us / 1000) | \(.p99_us / 1000) | \(.max_us / 1000) | \(.non200 + .errors.connect + .errors.read + .errors.write + .errors.timeout) | \(.proxied) | \(.server_cpu_pct) | \(.server_main_thread_cpu_pct) | \(.node2_cpu_pct) | \(.client_cpu_pct) | \(.machine_busy_pct) |"' "$RESULTS"
echo
jq -rs '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r2: . * 100 | round / 100;
  def med(rows; f): [rows[] | f] | median;
  [.[] | select(.name == "local")] as $l | [.[] | select(.name == "proxied")] as $p |
  {l_rps: med($l; .rps), p_rps: med($p; .rps), l_p50: med($l; .p50_us), p_p50: med($p; .p50_us),
   l_p99: med($l; .p99_us), p_p99: med($p; .p99_us),
   l_cpu: med($l; .server_cpu_pct), p_cpu: med($p; .server_cpu_pct),
   l_cpu2: med($l; .node2_cpu_pct), p_cpu2: med($p; .node2_cpu_pct)} as $m |
  "| median of \($l | length) runs | req/s | p50 ms | p99 ms | node 1 CPU % | node 2 CPU % | node 1 + node 2 CPU µs per read |",
  "|---|--:|--:|--:|--:|--:|--:|",
  "| local | \($m.l_rps | round) | \($m.l_p50 / 1000) | \($m.l_p99 / 1000) | \($m.l_cpu) | \($m.l_cpu2) | \(($m.l_cpu + $m.l_cpu2) * 1e4 / $m.l_rps | r2) |",
  "| proxied | \($m.p_rps | round) | \($m.p_p50 / 1000) | \($m.p_p99 / 1000) | \($m.p_cpu) | \($m.p_cpu2) | \(($m.p_cpu + $m.p_cpu2) * 1e4 / $m.p_rps | r2) |",
  "| **proxied ÷ local** | **\($m.p_rps / $m.l_rps | r2)** | \($m.p_p50 / $m.l_p50 | r2) | \($m.p_p99 / $m.l_p99 | r2) | | | |"
' "$RESULTS"
echo
echo "\"proxied\" counts node 1's \`firescroll_cluster_proxy_requests_total{result=\"ok\"}\` over the run" \
  "(0 for the local runs shows no read left node 1). CPU % is of one CPU, from /proc; machine busy" \
  "is of all $(m nproc) CPUs × 100."
