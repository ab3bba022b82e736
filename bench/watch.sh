#!/usr/bin/env bash
# Watch benchmark (issue 14): 1,000 watchers of one pk on one node, pinned and unpinned in one
# run. For each mode of WATCH_PIN_MODES ("1 0": pinned first) starts a fresh embedded node
# (127.0.0.1, temp DB_PATH; pinned = the node alone on CPU $SERVER_CPU, the clients on
# $CLIENT_CPU) and runs bench/watch.ts against it: write throughput without watchers, memory per
# idle watcher, write-to-arrival latency of broadcasts to every watcher, write throughput with
# the watchers open. Prints a Markdown block for bench/RESULTS.md on stdout.
#
# Knobs (env): WATCHERS=1000 WATCH_CLIENTS=4 BROADCASTS=20 GAP_MS=250 WRITE_S=8
#   WRITE_CONCURRENCY=16 WATCH_PIN_MODES="1 0" SERVE_THREADS (node default) PARTITIONS=16
#   H2C=1 (each client process's streams share one HTTP/2 connection instead of one each)
#   WATCH_CLIENT=go (bench/watch_client.go, built here with `go build`) or deno (`watch.ts client`)
#   WATCH_API_PORT=28390 WATCH_INTERNAL_PORT=28391 KEEP_TMP=1
# Usage: bash bench/watch.sh > watch.md

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export PARTITIONS=${PARTITIONS:-16}
WATCHERS=${WATCHERS:-1000}
WATCH_CLIENTS=${WATCH_CLIENTS:-4}
BROADCASTS=${BROADCASTS:-20}
GAP_MS=${GAP_MS:-250}
WRITE_S=${WRITE_S:-8}
WRITE_CONCURRENCY=${WRITE_CONCURRENCY:-16}
WATCH_PIN_MODES=${WATCH_PIN_MODES:-1 0}
API_PORT_=${WATCH_API_PORT:-28390}
INTERNAL_PORT_=${WATCH_INTERNAL_PORT:-28391}

WATCH_CLIENT=${WATCH_CLIENT:-go}
need deno curl jq taskset
machine_json >"$TMP/machine.json"
case "$WATCH_CLIENT" in
  go)
    need go
    CGO_ENABLED=0 go build -o "$TMP/watch_client" bench/watch_client.go || die "cannot build bench/watch_client.go"
    CLIENT_ARGS=(--client-bin "$TMP/watch_client")
    ;;
  deno) CLIENT_ARGS=() ;;
  *) die "WATCH_CLIENT must be go or deno" ;;
esac
budget=$((2 * WRITE_S + BROADCASTS * GAP_MS / 1000 + 120))
for PIN in $WATCH_PIN_MODES; do
  log "PIN=$PIN: starting a fresh node on $API_PORT_/$INTERNAL_PORT_"
  start_node "watch-node-pin$PIN" "$API_PORT_" "$INTERNAL_PORT_" WATCHERS_MAX=$((WATCHERS + 100))
  CMD=(deno run --allow-all bench/watch.ts --url "http://127.0.0.1:$API_PORT_"
    --metrics-url "http://127.0.0.1:$INTERNAL_PORT_/metrics" --watchers "$WATCHERS"
    --clients "$WATCH_CLIENTS" --broadcasts "$BROADCASTS" --gap-ms "$GAP_MS" --write-s "$WRITE_S"
    --write-concurrency "$WRITE_CONCURRENCY" --partitions "$PARTITIONS")
  [[ "${H2C:-0}" != 1 ]] || CMD+=(--h2c)
  CMD+=("${CLIENT_ARGS[@]}")
  # shellcheck disable=SC2046
  timeout "$budget" $(client_prefix) "${CMD[@]}" --pid "$NODE_PID" >"$TMP/watch-pin$PIN.json" ||
    die "watch benchmark failed"
  alive "$NODE_PID"
  stop_node "$NODE_PID"
  # The baseline in the same mode: bare Deno.serve streams (bench/watch_probe.ts), the same
  # clients and broadcasts, no FireScroll code.
  log "PIN=$PIN: the baseline, bench/watch_probe.ts's server on $API_PORT_"
  port_free "$API_PORT_"
  # shellcheck disable=SC2046
  $(server_prefix) deno run --allow-all bench/watch_probe.ts server "$API_PORT_" >"$TMP/probe-pin$PIN.log" 2>&1 &
  PROBE_PID=$!
  STARTED_PIDS+=("$PROBE_PID")
  wait_http_200 "http://127.0.0.1:$API_PORT_/stats" 30
  # shellcheck disable=SC2046
  timeout "$budget" $(client_prefix) "${CMD[@]}" --pid "$PROBE_PID" --broadcast-only \
    >"$TMP/probe-pin$PIN.json" || die "watch baseline failed"
  kill "$PROBE_PID" 2>/dev/null || true
  wait "$PROBE_PID" 2>/dev/null || true
done

m() { jq -r ".$1" "$TMP/machine.json"; }
echo "### Watch: $WATCHERS watchers of one pk, embedded node ($(m date))"
echo
echo "Machine: $(m nproc) vCPU $(m cpu), $(m mem), Linux $(m kernel); $(m deno). Commit $(m commit)" \
  "($(m src_files_changed) uncommitted changes in src/ and main.ts). A fresh node per mode:" \
  "embedded log, $PARTITIONS partitions, serving threads ${SERVE_THREADS:-default}," \
  "LISTEN_HOST=127.0.0.1. $WATCHERS streams of \`pk=hot\` ($(if [[ "${H2C:-0}" == 1 ]]; then echo "HTTP/2 prior knowledge: each client process's streams on one connection"; else echo "one HTTP/1.1 connection each"; fi)) from" \
  "$WATCH_CLIENTS client processes ($(if [[ "$WATCH_CLIENT" == go ]]; then echo "bench/watch_client.go, Go"; else echo '`watch.ts client`, Deno'; fi)); $BROADCASTS puts of pk hot, $GAP_MS ms apart, each carrying its" \
  "send time (latency = arrival in the client − send time, same clock); writes = \`bench/write.ts\`," \
  "$WRITE_CONCURRENCY closed-loop writers of one record on other pks, $WRITE_S s, before the" \
  "watchers open and again while they are open. Memory = the node's VmRSS after the watchers" \
  "opened and settled 3 s, minus before, ÷ watchers. Pinned: the node on CPU ${SERVER_CPU:-1}, every" \
  "client on CPU ${CLIENT_CPU:-0}."
echo
echo '```sh'
printf '%q ' "${CMD[@]}" | sed -e 's/ $//'
echo ' --pid $NODE_PID'
echo '```'
echo
echo 'The baseline rows are bench/watch_probe.ts'"'"'s server (bare `Deno.serve`, one thread, a' \
  'ReadableStream per stream, no FireScroll code) run right after the node in the same mode, with' \
  'the same clients and broadcasts (`--broadcast-only`).'
echo
echo "| mode | server | RSS per idle watcher | arrivals / expected | latency p50 ms | p99 ms | max ms | writes/s without | with watchers | ratio |"
echo "| ---- | ------ | -------------------: | ------------------: | -------------: | -----: | -----: | ---------------: | ------------: | ----: |"
for PIN in $WATCH_PIN_MODES; do
  if [[ "$PIN" == 1 ]]; then mode=pinned; else mode=unpinned; fi
  for server in node probe; do
    if [[ "$server" == node ]]; then j="$TMP/watch-pin$PIN.json"; name=FireScroll; else j="$TMP/probe-pin$PIN.json"; name=baseline; fi
    jq -r --arg mode "$mode" --arg name "$name" '"| \($mode) | \($name) | \((.rssPerWatcherBytes / 1024 * 10 | round) / 10) KiB | \(.arrivals) / \(.expectedArrivals) | \(.latencyMs.p50 * 10 | round / 10) | \(.latencyMs.p99 * 10 | round / 10) | \(.latencyMs.max * 10 | round / 10) | \(.writesWithout.recordsPerS // "—" | if type == "number" then round else . end) | \(.writesWith.recordsPerS // "—" | if type == "number" then round else . end) | \(.writeRatio // "—" | if type == "number" then (. * 100 | round / 100) else . end) |"' "$j"
  done
done
