#!/usr/bin/env bash
# Before/after of one benchmark script in the same run: runs bench/SCRIPT from a base checkout
# (e.g. a `git worktree` of the commit before a change) and from this checkout alternately —
# base, new, new, base, … — so drift and the first-run penalty fall on both sides alike. Each
# run's Markdown report goes to OUT_DIR/{base,new}-N.md; compare the figures across them.
#
# Usage: bash bench/ab.sh BASE_CHECKOUT OUT_DIR PAIRS SCRIPT [KEY=VALUE ...]
#   e.g. bash bench/ab.sh /tmp/base /tmp/ab-read 2 read.sh PIN=1 ROUNDS=3 DURATION=8
# The KEY=VALUE pairs are the script's knobs (see its header), the same for both sides.
set -euo pipefail
base=$(cd "$1" && pwd)
out=$2
pairs=$3
script=$4
shift 4
new=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -f "$base/bench/$script" ]] || { echo "ab.sh: $base/bench/$script not found" >&2; exit 2; }
[[ "$pairs" =~ ^[1-9][0-9]?$ ]] || { echo "ab.sh: PAIRS must be 1-99" >&2; exit 2; }
mkdir -p "$out"
n=0
for ((pair = 1; pair <= pairs; pair++)); do
  if ((pair % 2 == 1)); then order=(base new); else order=(new base); fi
  for side in "${order[@]}"; do
    n=$((n + 1))
    if [[ "$side" == base ]]; then tree=$base; else tree=$new; fi
    echo "ab.sh: run $n: $side ($(git -C "$tree" rev-parse --short HEAD)) $script $*" >&2
    env "$@" bash "$tree/bench/$script" >"$out/$side-$pair.md"
  done
done
echo "ab.sh: reports in $out" >&2
