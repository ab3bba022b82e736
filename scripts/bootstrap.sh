#!/usr/bin/env bash
# Installs what the project needs on a machine that has only Node.js and npm: Deno (from npm, into
# .tools/ so that `deno task` never sees it in node_modules/.bin) and the npm dependencies.
# Idempotent and quick when everything is already there. Prints the PATH line to use.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
DENO_VERSION="${DENO_VERSION:-2.9.6}"

deno_bin="$root/.tools/node_modules/deno/deno"
if [ ! -x "$deno_bin" ] || [ "$("$deno_bin" --version 2>/dev/null | head -n1 | awk '{print $2}')" != "$DENO_VERSION" ]; then
  echo "bootstrap: installing deno $DENO_VERSION into .tools/" >&2
  npm install --prefix "$root/.tools" --no-audit --no-fund --loglevel=error "deno@$DENO_VERSION" >&2
fi

# `npm ci`: exactly what the committed lock file says (it fails when package.json and the lock
# disagree, instead of rewriting the lock), and only when the lock changed since the last install.
stamp="$root/node_modules/.firescroll-lock"
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "bootstrap: installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  cp package-lock.json "$stamp"
fi
# The committed dependency patches (patches/, idempotent; exits 1 if one no longer applies).
node patches/apply.mjs >&2
echo "$root/.tools/node_modules/.bin"
