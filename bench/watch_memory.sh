#!/usr/bin/env bash
# Memory per idle watcher (issue 14), marginal: what 1,000 more open streams add to a server's
# resident memory once 300 are already open (heaps, JIT code and thread arenas already grown), for
# a node at SERVE_THREADS=1 and at its default, and for bench/watch_probe.ts's bare Deno.serve
# (a ReadableStream per response, no FireScroll code), over HTTP/1.1 (a connection per stream) and
# h2c. The streams are held by bench/watch_client.go. Prints a Markdown table on stdout.
#
# Knobs (env): WARM=300 WATCHERS=1000 SETTLE_S=6 WATCH_API_PORT=28390 WATCH_INTERNAL_PORT=28391
# Usage: bash bench/watch_memory.sh >> RESULTS-draft.md

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WARM=${WARM:-300}
WATCHERS=${WATCHERS:-1000}
SETTLE_S=${SETTLE_S:-6}
API_PORT_=${WATCH_API_PORT:-28390}
INTERNAL_PORT_=${WATCH_INTERNAL_PORT:-28391}
need deno curl go
CGO_ENABLED=0 go build -o "$TMP/watch_client" bench/watch_client.go || die "cannot build bench/watch_client.go"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# measure SERVER_PID PROTOCOL: prints "before after" (KiB) around opening $WATCHERS streams.
measure() {
  local pid=$1 warm_pid main_pid before after hold=$((3 * SETTLE_S + 10))
  # The client's arguments: the URL, then the stream count, then "h2c" or nothing.
  local url="http://127.0.0.1:$API_PORT_" h2c=()
  [[ "$2" != h2c ]] || h2c=(h2c)
  (sleep "$hold") | "$TMP/watch_client" "$url" "$WARM" "${h2c[@]}" >"$TMP/warm.out" &
  warm_pid=$!
  sleep "$SETTLE_S"
  before=$(rss_kib "$pid")
  (sleep $((2 * SETTLE_S))) | "$TMP/watch_client" "$url" "$WATCHERS" "${h2c[@]}" >"$TMP/main.out" &
  main_pid=$!
  sleep "$SETTLE_S"
  after=$(rss_kib "$pid")
  wait "$main_pid" || die "the watch client failed"
  kill "$warm_pid" 2>/dev/null || true
  wait "$warm_pid" 2>/dev/null || true
  grep -q "\"ready\":$WATCHERS" "$TMP/main.out" || die "not every stream opened: $(head -c 200 "$TMP/main.out")"
  echo "$before $after"
}

echo "| server | protocol | RSS with $WARM streams | with $((WARM + WATCHERS)) | per stream |"
echo "| ------ | -------- | ---------------------: | ----------------------: | ---------: |"
for proto in http1 h2c; do
  for server in probe node1 node; do
    port_free "$API_PORT_"
    case "$server" in
      probe)
        deno run --allow-all bench/watch_probe.ts server "$API_PORT_" >"$TMP/probe.log" 2>&1 &
        PID=$!
        STARTED_PIDS+=("$PID")
        wait_http_200 "http://127.0.0.1:$API_PORT_/stats" 30
        name="bare Deno.serve (watch_probe.ts)"
        ;;
      node1 | node)
        threads=()
        name="node, serving threads default"
        if [[ "$server" == node1 ]]; then threads=(SERVE_THREADS=1) name="node, SERVE_THREADS=1"; fi
        start_node "watch-memory-$server-$proto" "$API_PORT_" "$INTERNAL_PORT_" WATCHERS_MAX=$((WARM + WATCHERS + 100)) "${threads[@]}"
        PID=$NODE_PID
        curl -sf -XPOST "http://127.0.0.1:$API_PORT_/records/put" \
          -d '{"records":[{"pk":"hot","sk":"a","data":{"t":1}}]}' >/dev/null || die "seed put failed"
        ;;
    esac
    read -r before after < <(measure "$PID" "$proto")
    alive "$PID"
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    echo "| $name | $proto | $((before / 1024)) MiB | $((after / 1024)) MiB | **$(((after - before) / WATCHERS)) KiB** |"
  done
done
