#!/usr/bin/env bash
# Run a real S3-compatible server (Versity S3 Gateway, posix backend) on
# 127.0.0.1 for development and tests.
#
#   scripts/s3.sh start            start (builds versitygw with `go install` on first use)
#   scripts/s3.sh stop [--wipe]    stop; --wipe also deletes the state dir (all objects)
#   scripts/s3.sh restart          stop + start, keeping data
#   scripts/s3.sh status           exit 0 if running, 3 if not
#   scripts/s3.sh env              print `export ...` lines: eval "$(scripts/s3.sh env)"
#
# Env: S3_PORT (19000), S3_DIR (state dir, default <repo>/.cache/s3-run),
#      S3_START_TIMEOUT (60), S3_STOP_TIMEOUT (15), S3_LOG_REQUESTS (0; 1 logs
#      every request to the log file).
# Fixed for tests: access key firescroll, secret firescroll-secret, region
# us-east-1, bucket firescroll-test; use path-style addressing.
#
# Why versitygw: it is a Go module with semver tags, so it builds from the Go
# module proxy alone (no release downloads or images), and its posix backend
# stores each object as a plain file, handling streamed/multipart/aws-chunked
# uploads correctly (s3rver corrupts them). Posix caveat: keys "a" and "a/b"
# cannot both exist (409 ObjectParentIsFile / ExistingObjectIsDirectory).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/_service.sh
source "$ROOT/scripts/_service.sh"
S3_PORT="${S3_PORT:-19000}"
S3_DIR="${S3_DIR:-$ROOT/.cache/s3-run}"
S3_START_TIMEOUT="${S3_START_TIMEOUT:-60}"
S3_STOP_TIMEOUT="${S3_STOP_TIMEOUT:-15}"
S3_LOG_REQUESTS="${S3_LOG_REQUESTS:-0}"
HOST=127.0.0.1

VERSITYGW_MODULE=github.com/versity/versitygw
VERSITYGW_VERSION=v1.8.0 # pinned; bump deliberately (the bin dir is per version)

S3_ACCESS_KEY=firescroll
S3_SECRET_KEY=firescroll-secret
S3_REGION=us-east-1
S3_BUCKET=firescroll-test
ENDPOINT="http://$HOST:$S3_PORT"
HEALTH_PATH=/health # unauthenticated GET, used only for readiness

BIN_DIR="$ROOT/.cache/versitygw/$VERSITYGW_VERSION"
BIN="$BIN_DIR/versitygw"
DATA_DIR="$S3_DIR/data" # posix root: one sub dir per bucket
PID_FILE="$S3_DIR/versitygw.pid"
LOG_FILE="$S3_DIR/versitygw.log"

# sha256 of the empty body: S3 requires x-amz-content-sha256, which curl's
# --aws-sigv4 does not add by itself (versitygw answers 400 without it).
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

log() { echo "s3.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# --- binary (go install) -----------------------------------------------------

ensure_binary() {
  [[ -x "$BIN" ]] && return 0
  log "building $VERSITYGW_MODULE@$VERSITYGW_VERSION with go install (first run only, ~1-2 min)..."
  mkdir -p "$BIN_DIR"
  go_install "$VERSITYGW_MODULE/cmd/versitygw@$VERSITYGW_VERSION" versitygw "$BIN" ||
    die "cannot build versitygw"
}

# --- process helpers ---------------------------------------------------------

running_pid() { service_pid "$PID_FILE" "posix $DATA_DIR"; }

healthy() {
  [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$ENDPOINT$HEALTH_PATH")" == 200 ]]
}

# SigV4-signed request with the test credentials; prints the HTTP status.
s3_curl() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
    --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
    -H "x-amz-content-sha256: $EMPTY_SHA256" "$@"
}

# Idempotent: HEAD first; 409 on PUT means another caller just made it.
ensure_bucket() {
  local code
  code="$(s3_curl -I "$ENDPOINT/$S3_BUCKET")"
  [[ "$code" == 200 ]] && return 0
  code="$(s3_curl -X PUT "$ENDPOINT/$S3_BUCKET")"
  [[ "$code" == 200 || "$code" == 409 ]] || die "creating bucket $S3_BUCKET failed: HTTP $code"
}


print_env() {
  cat <<EOF
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export AWS_REGION=$S3_REGION
export AWS_ENDPOINT_URL=$ENDPOINT
export S3_BUCKET=$S3_BUCKET
EOF
}

# --- commands ----------------------------------------------------------------

cmd_start() {
  command -v curl >/dev/null || die "curl not found (used for readiness and bucket creation)"
  local pid
  if pid="$(running_pid)"; then
    ensure_bucket
    log "already running (pid $pid)"
    echo "s3 ready on $ENDPOINT bucket $S3_BUCKET"
    return 0
  fi
  port_open "$HOST" "$S3_PORT" && die "port $HOST:$S3_PORT is already in use by another process"

  ensure_binary
  mkdir -p "$DATA_DIR"
  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.prev"
  rm -f "$PID_FILE" # stale: running_pid said no server is alive

  local quiet=(--quiet)
  [[ "$S3_LOG_REQUESTS" == 1 ]] && quiet=()
  # setsid: detach from the caller's process group/terminal so the server
  # survives the calling shell; the inner bash writes its own pid and then
  # execs versitygw, so the pid file names the server itself. 9>&- keeps the
  # server from inheriting (and forever holding) the start/stop lock.
  # No --iam-dir: single-account mode with the root credentials below.
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    "$BIN" --port "$HOST:$S3_PORT" \
    --access "$S3_ACCESS_KEY" --secret "$S3_SECRET_KEY" --region "$S3_REGION" \
    --health "$HEALTH_PATH" "${quiet[@]}" \
    posix "$DATA_DIR" \
    </dev/null >"$LOG_FILE" 2>&1 9>&- &

  local start=$SECONDS
  while ((SECONDS - start < S3_START_TIMEOUT)); do
    if [[ -s "$PID_FILE" ]]; then
      pid="$(cat "$PID_FILE")"
      if ! kill -0 "$pid" 2>/dev/null; then
        log "versitygw exited during startup; last log lines:"
        tail -n 40 "$LOG_FILE" >&2 || true
        rm -f "$PID_FILE"
        exit 1
      fi
      if healthy; then
        ensure_bucket
        log "credentials: $S3_ACCESS_KEY / $S3_SECRET_KEY, region $S3_REGION, path-style" \
          "(eval \"\$(scripts/s3.sh env)\")"
        echo "s3 ready on $ENDPOINT bucket $S3_BUCKET"
        return 0
      fi
    elif ((SECONDS - start >= 10)); then
      die "versitygw failed to launch (no pid file); see $LOG_FILE"
    fi
    sleep 0.1
  done
  log "timed out after ${S3_START_TIMEOUT}s waiting for versitygw; last log lines:"
  tail -n 40 "$LOG_FILE" >&2 || true
  exit 1
}

cmd_stop() {
  local wipe=0 pid
  [[ "${1:-}" == "--wipe" ]] && wipe=1
  if pid="$(running_pid)"; then
    stop_process versitygw "$pid" "$S3_STOP_TIMEOUT"
    echo "s3 stopped"
  else
    echo "s3 not running"
  fi
  rm -f "$PID_FILE"
  if ((wipe)); then
    rm -rf "$S3_DIR"
    echo "wiped $S3_DIR"
  fi
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    echo "s3 running (pid $pid) on $ENDPOINT bucket $S3_BUCKET"
  else
    echo "s3 not running"
    exit 3
  fi
}

usage() {
  echo "usage: $0 {start|stop [--wipe]|restart|status|env}" >&2
  exit 2
}

case "${1:-}" in
  start) take_lock "$S3_DIR"; cmd_start ;;
  stop) take_lock "$S3_DIR"; cmd_stop "${2:-}" ;;
  restart) take_lock "$S3_DIR"; cmd_stop; cmd_start ;;
  status) cmd_status ;;
  env) print_env ;;
  *) usage ;;
esac
