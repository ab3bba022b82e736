#!/usr/bin/env bash
# Debian packages the test suite and benchmarks call (load generators, Kafka CLI, DNS for cluster
# tests). Skipped when already present; needs root, as on CI and the dev machines.
set -euo pipefail
need=()
command -v curl >/dev/null || need+=(curl)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v wrk >/dev/null || need+=(wrk)
command -v kcat >/dev/null || need+=(kcat)
[ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "ci_prereqs: missing ${need[*]}; install them (apt-get install ${need[*]})" >&2
    exit 0
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
