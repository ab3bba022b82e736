#!/usr/bin/env bash
# promtool, Prometheus's checker: the tests run it on a node's /metrics, on
# deploy/prometheus/alerts.yaml (check rules) and on its unit tests
# (deploy/prometheus/alerts_test.yaml, test rules).
#
#   scripts/promtool.sh path        build once if needed; print the binary's path
#   scripts/promtool.sh ARGS...     run promtool ARGS... (e.g. check rules FILE)
#
# Built like versitygw (scripts/s3.sh): `go install` of the Prometheus Go module at a pinned
# version, from the Go module proxy alone, cached under .cache/promtool/<version>/. The first
# build takes a few minutes (about 5 on 2 CPUs with empty Go caches).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/_service.sh
source "$ROOT/scripts/_service.sh"

PROMTOOL_MODULE=github.com/prometheus/prometheus
PROMTOOL_VERSION=v0.316.0 # pinned (Prometheus 3.x's module version); bump deliberately

BIN_DIR="$ROOT/.cache/promtool/$PROMTOOL_VERSION"
BIN="$BIN_DIR/promtool"

log() { echo "promtool.sh: $*" >&2; }

ensure_binary() {
  [[ -x "$BIN" ]] && return 0
  log "building $PROMTOOL_MODULE/cmd/promtool@$PROMTOOL_VERSION with go install (first run only, a few minutes)..."
  mkdir -p "$BIN_DIR"
  # Two runs at once (parallel test runners) would build twice; the lock makes the second wait.
  exec 8>"$BIN_DIR.lock"
  flock -w 900 8 || { log "timed out waiting for $BIN_DIR.lock"; exit 1; }
  [[ -x "$BIN" ]] && return 0
  go_install "$PROMTOOL_MODULE/cmd/promtool@$PROMTOOL_VERSION" promtool "$BIN" || {
    log "cannot build promtool"
    exit 1
  }
}

case "${1:-}" in
  path) ensure_binary; echo "$BIN" ;;
  "") echo "usage: $0 {path|ARGS...}" >&2; exit 2 ;;
  *) ensure_binary; exec "$BIN" "$@" ;;
esac
