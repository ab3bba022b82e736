#!/usr/bin/env bash
# The whole test suite: installs the toolchain, starts the real services the integration tests
# need (a Kafka broker and an S3 server, from scripts/), runs `deno test`, stops what it started,
# and ends with the line "N passed, N failed" read from deno's JUnit report.
# Extra arguments go to `deno test` (e.g. a path or --filter).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PATH="$(bash scripts/bootstrap.sh):$PATH"
export PATH
# promtool for the monitoring tests (built once from the Prometheus Go module, cached in .cache/);
# they fail without it. Two lines: a failed build must stop the suite (`export X=$(…)` would not).
promtool_bin="$(bash scripts/promtool.sh path)"
export FIRESCROLL_TEST_PROMTOOL="$promtool_bin"

mkdir -p .cache
report="$root/.cache/junit.xml"
rm -f "$report"

started=()
cleanup() {
  for service in "${started[@]}"; do bash "scripts/$service.sh" stop >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

# Services are started only when the suite has tests that need them and no external one is given.
if [ -z "${KAFKA_SEEDS:-}" ] && [ -n "$(ls tests/integration/kafka_*_test.ts 2>/dev/null)" ]; then
  # A far region for tests/integration/kafka_geo_test.ts: a listener advertised at a toxiproxy
  # port that adds FAR_RTT_MS to every round trip, so that a node seeded there reaches the broker
  # only through the proxy. Exported: a test that restarts the broker keeps the listener.
  far_listener="${KAFKA_FAR_PORT:-19096}"
  far_proxy="${KAFKA_FAR_PROXY_PORT:-19097}"
  export KAFKA_EXTRA_LISTENERS="FAR:$far_listener:$far_proxy"
  bash scripts/kafka.sh start
  started+=(kafka)
  export FIRESCROLL_TEST_KAFKA="127.0.0.1:${KAFKA_PORT:-19092}" FIRESCROLL_TEST_KAFKA_OWNED=1
  export FIRESCROLL_TEST_KAFKA_SASL="127.0.0.1:${KAFKA_SASL_PORT:-19094}"
  bash scripts/toxiproxy.sh start
  started+=(toxiproxy)
  bash scripts/toxiproxy.sh proxy far "127.0.0.1:$far_proxy" "127.0.0.1:$far_listener" \
    "${FAR_RTT_MS:-100}"
  export FIRESCROLL_TEST_KAFKA_FAR="127.0.0.1:$far_proxy" FIRESCROLL_TEST_FAR_RTT_MS="${FAR_RTT_MS:-100}"
elif [ -n "${KAFKA_SEEDS:-}" ]; then
  export FIRESCROLL_TEST_KAFKA="$KAFKA_SEEDS"
fi
if [ -z "${S3_ENDPOINT:-}" ] && [ -n "$(ls tests/integration/s3_*_test.ts 2>/dev/null)" ]; then
  bash scripts/s3.sh start
  started+=(s3)
  export FIRESCROLL_TEST_S3="http://127.0.0.1:${S3_PORT:-19000}"
fi

# `deno run` does not type-check, and nodes run that way: check everything once up front.
deno check main.ts src/ tests/ bench/ scripts/

status=0
deno test --allow-all --junit-path="$report" "$@" || status=$?
if [ -f "$report" ]; then
  deno run --allow-read scripts/junit_summary.ts "$report" || status=1
else
  echo "0 passed, 1 failed"
  status=1
fi
exit "$status"
