#!/usr/bin/env bash
# Start-up of an embedded node: seconds until its `node_ready` line (the node's own count from
# process start), the process's CPU (all threads, from /proc) at that moment and its resident
# memory 2 s later (settled, still idle). ROUNDS starts per tree, alternating between BASE_TREE (a
# checkout of another commit, e.g. a `git worktree`) and this one, each with an empty DB_PATH on
# 127.0.0.1 and the serving threads at their default (SERVE_THREADS passes through). PIN=1 runs
# every start on CPU SERVER_CPU. Prints a Markdown table.
#
# Knobs (env): ROUNDS=6 PIN=0 SERVER_CPU=1 START_API_PORT=28890 START_INTERNAL_PORT=28891
# Usage: bash bench/start.sh [BASE_TREE]

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BASE_TREE=${1:-}
ROUNDS=${ROUNDS:-6}
API_PORT_=${START_API_PORT:-28890}
INTERNAL_PORT_=${START_INTERNAL_PORT:-28891}
need deno jq

# start_once TREE: prints "seconds cpu_ms rss_mib" of one start of TREE's main.ts.
start_once() {
  local tree=$1 pid ticks i rss
  port_free "$API_PORT_"
  rm -rf "$TMP/db"
  mkdir -p "$TMP/db"
  (
    cd "$tree"
    # shellcheck disable=SC2046
    exec env -u KAFKA_SEEDS LISTEN_HOST=127.0.0.1 API_PORT="$API_PORT_" INTERNAL_PORT="$INTERNAL_PORT_" \
      DB_PATH="$TMP/db" $(server_prefix) deno run --allow-all main.ts
  ) >"$TMP/node.log" 2>&1 &
  pid=$!
  STARTED_PIDS+=("$pid")
  for i in $(seq 1 1500); do
    grep -q '"event":"node_ready"' "$TMP/node.log" && break
    alive "$pid"
    sleep 0.01
  done
  ticks=$(proc_ticks "$pid")
  grep -q '"event":"node_ready"' "$TMP/node.log" || die "no node_ready within 15 s (see $TMP/node.log)"
  sleep 2
  rss=$(awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  jq -r --arg ms "$((ticks * 1000 / CLK_TCK))" --arg rss "$rss" \
    'select(.event == "node_ready") | "\(.seconds) \($ms) \($rss)"' "$TMP/node.log"
}

trees=("$ROOT")
names=("this tree ($(git -C "$ROOT" rev-parse --short HEAD))")
if [[ -n "$BASE_TREE" ]]; then
  trees=("$BASE_TREE" "$ROOT")
  names=("base ($(git -C "$BASE_TREE" rev-parse --short HEAD))" "${names[0]}")
fi
declare -A seconds cpu rss
for ((r = 1; r <= ROUNDS; r++)); do
  order=("${!trees[@]}")
  # Alternate which tree starts first, so a warm page cache or a busy moment falls on both.
  if ((r % 2 == 0)); then order=($(printf '%s\n' "${order[@]}" | tac)); fi
  for t in "${order[@]}"; do
    read -r s c m < <(start_once "${trees[t]}")
    seconds[$t]+="$s "
    cpu[$t]+="$c "
    rss[$t]+="$m "
    log "round $r, ${names[t]}: node_ready ${s} s, ${c} ms CPU, ${m} MiB resident"
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
echo "Start-up of an embedded node, PIN=${PIN:-0}, $ROUNDS starts per tree, alternating ($(date -u +%Y-%m-%dT%H:%M:%SZ)):"
echo
echo "| tree | node_ready s, per start | median | CPU ms at ready, per start | median | resident MiB 2 s later | median |"
echo "| ---- | ----------------------- | -----: | -------------------------- | -----: | ---------------------- | -----: |"
for t in "${!trees[@]}"; do
  echo "| ${names[t]} | ${seconds[$t]% } | $(median <<<"${seconds[$t]}") | ${cpu[$t]% } | $(median <<<"${cpu[$t]}") | ${rss[$t]% } | $(median <<<"${rss[$t]}") |"
done
