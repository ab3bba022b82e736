#!/usr/bin/env bash
# A/B of single-key get between two commits in ONE run: a node from each commit (git worktrees in a
# temp folder, sharing this checkout's node_modules), both seeded with 100k records by
# bench/seed.ts, then wrk rounds alternating between them; prints req/s and the node's CPU per
# request for each. Tells a code change from a machine change. Loopback only, bounded.
#
#   bash bench/ab_read.sh <rev-a> [<rev-b> (default HEAD)]     knobs: ROUNDS=3 DURATION=8
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
REV_A=${1:?usage: ab_read.sh <rev-a> [<rev-b>]}
REV_B=${2:-HEAD}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
need deno wrk curl git
root=$(pwd)
for side in a b; do
  rev=$REV_A
  [ "$side" = b ] && rev=$REV_B
  git worktree add --detach "$TMP/$side" "$rev" >/dev/null 2>&1 || die "cannot check out $rev"
  ln -s "$root/node_modules" "$TMP/$side/node_modules"
done
cleanup_worktrees() { git worktree remove --force "$TMP/a" 2>/dev/null; git worktree remove --force "$TMP/b" 2>/dev/null; }
trap 'cleanup_worktrees; cleanup' EXIT

start_at() { # side api internal
  mkdir -p "$TMP/$1-db"
  (cd "$TMP/$1" && exec env -u KAFKA_SEEDS LISTEN_HOST=127.0.0.1 API_PORT="$2" INTERNAL_PORT="$3" \
    DB_PATH="$TMP/$1-db" deno run --allow-all main.ts) >"$TMP/$1.log" 2>&1 &
  echo $!
}
PID_A=$(start_at a 28840 28841)
STARTED_PIDS+=("$PID_A")
PID_B=$(start_at b 28842 28843)
STARTED_PIDS+=("$PID_B")
wait_http_200 http://127.0.0.1:28840/readyz 60
wait_http_200 http://127.0.0.1:28842/readyz 60
for port in 28840 28842; do
  deno run --allow-net=127.0.0.1 --allow-env bench/seed.ts --url "http://127.0.0.1:$port" \
    --records 100000 --status-url "http://127.0.0.1:$((port + 1))/internal/status" >/dev/null ||
    die "seeding $port failed"
done
run_wrk() {
  wrk -t1 -c32 -d"${DURATION}s" -s bench/get.lua "http://127.0.0.1:$1/" -- 100000 2>/dev/null |
    awk '/Requests\/sec/ {print $2}'
}
run_wrk 28840 >/dev/null
run_wrk 28842 >/dev/null
echo "| round | $REV_A req/s | µs CPU/req | $REV_B req/s | µs CPU/req |"
echo "| --- | --: | --: | --: | --: |"
for round in $(seq 1 "$ROUNDS"); do
  t0=$(proc_ticks "$PID_A"); a=$(run_wrk 28840); t1=$(proc_ticks "$PID_A")
  u0=$(proc_ticks "$PID_B"); b=$(run_wrk 28842); u1=$(proc_ticks "$PID_B")
  alive "$PID_A"
  alive "$PID_B"
  awk -v r="$round" -v a="$a" -v b="$b" -v ta=$((t1 - t0)) -v tb=$((u1 - u0)) -v d="$DURATION" \
    'BEGIN { printf "| %d | %.0f | %.1f | %.0f | %.1f |\n", r, a, ta * 10000 / (a * d), b, tb * 10000 / (b * d) }'
done
