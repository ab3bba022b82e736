# FireScroll for Deno: the production image (Fly.io: fly.toml; locally: compose.yaml).
#
#   docker build -t firescroll .
#   docker run --rm -p 127.0.0.1:8190:8190 -v firescroll-data:/data firescroll
#
# Every setting is an environment variable (docs/configuration.md); only DB_PATH is set here,
# because the image owns its volume. Secrets never go in the image.

# --- npm dependencies ------------------------------------------------------------------------
# The Deno image has no npm, so npm runs in a Node stage and only node_modules is copied over.
# This stage deliberately has no `--platform=$BUILDPLATFORM`: it runs on the target architecture,
# so npm picks the prebuilt native packages for it (@lmdb/lmdb-linux-x64 or @lmdb/lmdb-linux-arm64,
# and the msgpackr-extract ones). Nothing is compiled.
FROM node:22-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# `npm ci`: exactly the committed lock file, which lists every platform's optional packages (the
# build fails if package.json and the lock disagree). --omit=dev keeps the test-only packages
# out; --ignore-scripts because lmdb's install script only looks for the prebuilt binary that the
# optional package already ships.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error
# The committed dependency patches (patches/README.md): kafkajs's encoder without per-varint
# allocations. Exits 1 if a patch no longer applies to the installed version.
COPY patches ./patches
RUN node patches/apply.mjs

# --- runtime ---------------------------------------------------------------------------------
# Pinned to the Deno that scripts/bootstrap.sh installs for development and CI (tests/deploy_test.ts
# checks they agree). Debian (glibc) because lmdb's prebuilt binaries are glibc builds.
FROM denoland/deno:debian-2.9.6
WORKDIR /app

# OCI labels; the version is src/version.ts's (tests/deploy_test.ts checks they agree).
LABEL org.opencontainers.image.title="FireScroll for Deno" \
  org.opencontainers.image.description="Read-mostly configuration database: a shared log, LMDB replicas in every region" \
  org.opencontainers.image.version="0.16.0"

# The data volume belongs to the image's non-root `deno` user (uid 1993). A fresh named Docker
# volume copies this ownership; Fly mounts its volume for the image's USER.
RUN mkdir -p /data && chown deno:deno /data

# Code and dependencies stay owned by root: the server can read them, not change them.
COPY --from=deps /app/node_modules ./node_modules
# deno.json matters at run time: it turns on the unstable UDP API (gossip) and nodeModulesDir.
COPY deno.json package.json main.ts ./
COPY src ./src

USER deno

# Resolve and transpile everything into DENO_DIR (/deno-dir, owned by deno) at build time, so a
# start needs no network and no compile.
RUN deno cache main.ts
# Fail the build, not the first boot, when lmdb's native binding is missing for this architecture.
RUN deno eval "import { open } from 'lmdb'; \
  const dir = Deno.makeTempDirSync(); \
  const db = open({ path: dir + '/check.mdb' }); \
  await db.put('k', 1); \
  const ok = db.get('k') === 1; \
  await db.close(); \
  Deno.removeSync(dir, { recursive: true }); \
  if (!ok) throw new Error('lmdb read-back failed');"

ENV DB_PATH=/data
# No background version check (an outbound request per start, and a write to DENO_DIR).
ENV DENO_NO_UPDATE_CHECK=1
VOLUME /data

# Public API (TCP), internal port (TCP: metrics, status, proxy targets; never publish it), and
# gossip (UDP, between the nodes of one region only).
EXPOSE 8190 8191 8192/udp

# Healthy = ready (`GET /readyz` on the public port: every owned partition serves). The image has
# no curl, so Deno asks; TLS_CERT_FILE turns the port to HTTPS, whose certificate does not name
# 127.0.0.1, hence the check skips verification only for this loopback request.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["deno", "eval", "--unsafely-ignore-certificate-errors=127.0.0.1", "const s = Deno.env.get('TLS_CERT_FILE') ? 'https' : 'http'; const r = await fetch(`${s}://127.0.0.1:${Deno.env.get('API_PORT') ?? '8190'}/readyz`); Deno.exit(r.ok ? 0 : 1);"]

# main.ts drains and exits 0 on SIGTERM (or SIGINT) within SHUTDOWN_TIMEOUT_MS. The image's
# entrypoint runs tini, which forwards the signal to deno.
STOPSIGNAL SIGTERM

# --allow-all rather than a list: lmdb is a Node-API addon, which needs --allow-ffi, and native code
# can do anything a process can, so a narrower list (net, env, sys, read, write=/data, ffi) would
# not actually confine the server; it would only add ways to fail at run time.
CMD ["deno", "run", "--allow-all", "main.ts"]
