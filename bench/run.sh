#!/usr/bin/env bash
# The whole single-node benchmark (`deno task bench`): bench/read.sh, then bench/write.sh.
# Their Markdown goes to stdout (and to $OUT when set, e.g. OUT=bench/last-run.md); progress to
# stderr. Every knob of the two scripts passes through the environment; see bench/README.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${OUT:-/dev/null}
{
  bash "$here/read.sh"
  echo
  bash "$here/write.sh"
} | tee "$out"
