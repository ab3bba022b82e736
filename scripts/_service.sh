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
