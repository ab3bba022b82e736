#!/usr/bin/env bash
# Shared by scripts/kafka.sh and scripts/s3.sh: process handling of a background test service.

# stop_process NAME PID TIMEOUT_S: SIGTERM (the service's orderly shutdown, which makes the next
# start fast), wait up to TIMEOUT_S, then SIGKILL as a last resort; returns once PID is gone.
stop_process() {
  local name=$1 pid=$2 timeout=$3 start=$SECONDS
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && ((SECONDS - start < timeout)); do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$name did not stop within ${timeout}s; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
}

# service_pid PID_FILE MATCH: prints the pid and returns 0 only if the pid file points at a live
# process whose command line contains MATCH (guards against stale pid files and pid reuse).
service_pid() {
  local pid_file=$1 match=$2 pid
  [[ -f "$pid_file" ]] || return 1
  pid="$(cat "$pid_file" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$match" || return 1
  echo "$pid"
}

# port_open HOST PORT: whether something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# take_lock STATE_DIR: serialises start/stop so parallel callers (test runners) don't race. The
# lock lives beside the state dir so `stop --wipe` can delete the dir.
take_lock() {
  mkdir -p "$(dirname "$1")"
  exec 9>"$1.lock"
  flock -w 120 9 || { echo "timed out waiting for lock $1.lock" >&2; exit 1; }
}

# go_install PACKAGE@VERSION BUILT DEST: builds a Go command with `go install` (GOTOOLCHAIN=local:
# never fetch another Go) into a temp dir, then moves the binary named BUILT to DEST, so that an
# interrupted build never leaves a half-written binary that a later `-x DEST` check would trust.
go_install() {
  local package=$1 built=$2 dest=$3 tmp
  command -v go >/dev/null || { echo "go not found (needed once to build $package)" >&2; return 1; }
  tmp="$dest.tmp.$$"
  mkdir -p "$tmp"
  if ! GOBIN="$tmp" GOTOOLCHAIN=local go install "$package" >"$tmp/install.log" 2>&1; then
    tail -n 40 "$tmp/install.log" >&2
    echo "go install of $package failed (log: $tmp/install.log)" >&2
    return 1
  fi
  mv -f "$tmp/$built" "$dest"
  rm -rf "$tmp"
}
