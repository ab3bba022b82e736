#!/usr/bin/env bash
# A user-space latency proxy for simulated regions (kernel netem is not available on these
# machines): toxiproxy, built once with `go install` at a pinned version, its API on 127.0.0.1.
#
#   scripts/toxiproxy.sh start                           start the server (builds it on first use)
#   scripts/toxiproxy.sh stop                            stop it (its proxies go with it)
#   scripts/toxiproxy.sh status                          exit 0 if running, 3 if not
#   scripts/toxiproxy.sh proxy NAME LISTEN UPSTREAM RTT_MS
#                                                        a TCP proxy LISTEN → UPSTREAM (host:port)
#                                                        adding RTT_MS/2 each way (so RTT_MS per
#                                                        round trip); replaces one of the same NAME
#   scripts/toxiproxy.sh delete NAME                     remove a proxy
#
# Env: TOXIPROXY_PORT (18474, the API), TOXIPROXY_DIR (state dir, default
#      <repo>/.cache/toxiproxy-run). Ports are below the kernel's ephemeral range (32768).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/_service.sh
source "$ROOT/scripts/_service.sh"
HOST=127.0.0.1
TOXIPROXY_PORT="${TOXIPROXY_PORT:-18474}"
TOXIPROXY_DIR="${TOXIPROXY_DIR:-$ROOT/.cache/toxiproxy-run}"
[[ "$TOXIPROXY_DIR" == /* ]] || TOXIPROXY_DIR="$PWD/$TOXIPROXY_DIR"
TOXIPROXY_MODULE=github.com/Shopify/toxiproxy/v2
TOXIPROXY_VERSION=v2.12.0 # pinned; bump deliberately (the bin dir is per version)
BIN_DIR="$ROOT/.cache/toxiproxy/$TOXIPROXY_VERSION"
BIN="$BIN_DIR/toxiproxy-server"
PID_FILE="$TOXIPROXY_DIR/toxiproxy.pid"
LOG_FILE="$TOXIPROXY_DIR/toxiproxy.log"
API="http://$HOST:$TOXIPROXY_PORT"

log() { echo "toxiproxy.sh: $*" >&2; }
die() {
  log "$*"
  exit 1
}

ensure_binary() {
  [[ -x "$BIN" ]] && return 0
  log "building $TOXIPROXY_MODULE@$TOXIPROXY_VERSION with go install (first run only, ~10-60 s)..."
  mkdir -p "$BIN_DIR"
  go_install "$TOXIPROXY_MODULE/cmd/server@$TOXIPROXY_VERSION" server "$BIN" ||
    die "cannot build toxiproxy"
}

running_pid() { service_pid "$PID_FILE" "toxiproxy-server -host $HOST -port $TOXIPROXY_PORT"; }

api() { curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "$@"; }

cmd_start() {
  local pid
  if pid="$(running_pid)"; then
    echo "toxiproxy already running (pid $pid) on $HOST:$TOXIPROXY_PORT"
    return 0
  fi
  port_open "$HOST" "$TOXIPROXY_PORT" && die "port $HOST:$TOXIPROXY_PORT is already in use"
  ensure_binary
  mkdir -p "$TOXIPROXY_DIR"
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    "$BIN" -host "$HOST" -port "$TOXIPROXY_PORT" >"$LOG_FILE" 2>&1 9>&- &
  local deadline=$((SECONDS + 20))
  until [[ "$(api "$API/version" 2>/dev/null || true)" == 200 ]]; do
    ((SECONDS < deadline)) || die "toxiproxy did not answer within 20 s (log: $LOG_FILE)"
    sleep 0.1
  done
  echo "toxiproxy ready on $HOST:$TOXIPROXY_PORT"
}

cmd_stop() {
  local pid
  if pid="$(running_pid)"; then stop_process toxiproxy "$pid" 10; fi
  rm -f "$PID_FILE"
}

cmd_proxy() {
  [[ $# -eq 4 ]] || die "usage: proxy NAME LISTEN UPSTREAM RTT_MS"
  local name=$1 listen=$2 upstream=$3 rtt=$4
  [[ "$rtt" =~ ^[0-9]+$ ]] || die "RTT_MS must be a whole number of ms, got $rtt"
  running_pid >/dev/null || die "toxiproxy is not running (scripts/toxiproxy.sh start)"
  api -X DELETE "$API/proxies/$name" >/dev/null || true
  local code
  code=$(api -X POST "$API/proxies" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$name\",\"listen\":\"$listen\",\"upstream\":\"$upstream\",\"enabled\":true}")
  [[ "$code" == 201 ]] || die "creating proxy $name ($listen → $upstream) failed: HTTP $code"
  local half=$((rtt / 2)) stream
  for stream in upstream downstream; do
    code=$(api -X POST "$API/proxies/$name/toxics" -H 'Content-Type: application/json' \
      -d "{\"name\":\"latency_$stream\",\"type\":\"latency\",\"stream\":\"$stream\",\"attributes\":{\"latency\":$half,\"jitter\":0}}")
    [[ "$code" == 200 ]] || die "adding latency to $name ($stream) failed: HTTP $code"
  done
}

cmd_delete() {
  [[ $# -eq 1 ]] || die "usage: delete NAME"
  api -X DELETE "$API/proxies/$1" >/dev/null || true
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) if running_pid >/dev/null; then exit 0; else exit 3; fi ;;
  proxy)
    shift
    cmd_proxy "$@"
    ;;
  delete)
    shift
    cmd_delete "$@"
    ;;
  *) die "usage: $0 start|stop|status|proxy NAME LISTEN UPSTREAM RTT_MS|delete NAME" ;;
esac
