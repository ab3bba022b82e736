#!/usr/bin/env bash
# The benchmarks (`deno task bench`). Without arguments: the single-node ones, bench/read.sh then
# bench/write.sh. Name suites to run others, in the order given:
#   bash bench/run.sh                      # read write
#   bash bench/run.sh kafka cluster backup # the Kafka, region-cluster and S3 benchmarks
#   bash bench/run.sh all                  # read write kafka cluster backup
#   SUITES="kafka backup" bash bench/run.sh
# Each suite is bench/<suite>.sh. Their Markdown goes to stdout (and to $OUT when set, e.g.
# OUT=bench/last-run.md); progress to stderr. Every knob of the scripts passes through the
# environment; see bench/README.md. A failing suite stops the run.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${OUT:-/dev/null}
if (($# > 0)); then suites="$*"; else suites=${SUITES:-read write}; fi
suites=${suites//all/read write kafka cluster backup}
for suite in $suites; do
  case $suite in
    read | write | kafka | cluster | backup) ;;
    *)
      echo "run.sh: unknown suite '$suite' (read, write, kafka, cluster, backup, all)" >&2
      exit 2
      ;;
  esac
done
{
  first=1
  for suite in $suites; do
    ((first)) || echo
    first=0
    bash "$here/$suite.sh"
  done
} | tee "$out"
