#!/usr/bin/env bash
# `npm start`: installs the toolchain if needed and starts one node. With no environment this is
# the embedded default: no Kafka, data in ./data, API on :8190, internal port on :8191.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PATH="$(bash scripts/bootstrap.sh):$PATH"
exec deno task start "$@"
