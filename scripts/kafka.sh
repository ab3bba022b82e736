#!/usr/bin/env bash
# Run a single-node Apache Kafka broker (KRaft combined mode, no ZooKeeper)
# on 127.0.0.1 for development and tests.
#
#   scripts/kafka.sh start            start (fetches Kafka via Maven on first use)
#   scripts/kafka.sh stop [--wipe]    stop; --wipe also deletes the state dir
#   scripts/kafka.sh restart          stop + start, keeping data
#   scripts/kafka.sh status           exit 0 if running, 3 if not
#   scripts/kafka.sh classpath        print the Kafka classpath
#   scripts/kafka.sh tool CLASS ARGS  run a Kafka CLI class (see cmd_tool)
#
# Env: KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19093), KAFKA_SASL_PORT (19094, SASL/PLAIN),
#      KAFKA_DIR (state dir, default <repo>/.cache/kafka-run),
#      KAFKA_VERSION (3.9.2), KAFKA_START_TIMEOUT (90), KAFKA_STOP_TIMEOUT (30),
#      KAFKA_HEAP_OPTS ("-Xms256m -Xmx768m"), JAVA_HOME (optional),
#      KAFKA_EXTRA_LISTENERS ("NAME:PORT:ADVERTISED_PORT,...", none by default): more PLAINTEXT
#      listeners on 127.0.0.1, each advertised at its own port. bench/geo.sh gives every simulated
#      region one, advertised at that region's latency proxy, so that a region's clients reach
#      the broker only through its proxy (Kafka hands clients the advertised address of the
#      listener they connected to).
#
# Kafka is only ever fetched from Maven Central through `mvn`; the resolved
# classpath is cached in .cache/kafka/<version>/ so later starts skip Maven.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/_service.sh
source "$ROOT/scripts/_service.sh"
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
# A second listener with SASL/PLAIN (users firescroll / firescroll-secret), for the tests of
# authenticated connections (hosted Kafka services require SASL).
KAFKA_SASL_PORT="${KAFKA_SASL_PORT:-19094}"
KAFKA_DIR="${KAFKA_DIR:-$ROOT/.cache/kafka-run}"
# Absolute, so the pid check (which matches the JVM's command line) works from
# any working directory.
[[ "$KAFKA_DIR" == /* ]] || KAFKA_DIR="$PWD/$KAFKA_DIR"
KAFKA_VERSION="${KAFKA_VERSION:-3.9.2}" # newest 3.9.x on Maven Central
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
HOST=127.0.0.1
KAFKA_EXTRA_LISTENERS="${KAFKA_EXTRA_LISTENERS:-}"
EXTRA_LISTEN=""
EXTRA_ADVERTISED=""
EXTRA_PROTOCOLS=""
EXTRA_PORTS=()
if [[ -n "$KAFKA_EXTRA_LISTENERS" ]]; then
  IFS=, read -r -a _extra <<<"$KAFKA_EXTRA_LISTENERS"
  for _l in "${_extra[@]}"; do
    [[ "$_l" =~ ^([A-Z][A-Z0-9_]*):([0-9]+):([0-9]+)$ ]] ||
      { echo "kafka.sh: KAFKA_EXTRA_LISTENERS entry '$_l' is not NAME:PORT:ADVERTISED_PORT" >&2; exit 1; }
    EXTRA_LISTEN+=",${BASH_REMATCH[1]}://$HOST:${BASH_REMATCH[2]}"
    EXTRA_ADVERTISED+=",${BASH_REMATCH[1]}://$HOST:${BASH_REMATCH[3]}"
    EXTRA_PROTOCOLS+=",${BASH_REMATCH[1]}:PLAINTEXT"
    EXTRA_PORTS+=("${BASH_REMATCH[2]}")
  done
fi

# Versions of the log4j 1.x binding Kafka 3.9 expects at runtime (the
# kafka_2.13 pom ships slf4j-api only; the binary tarball adds these).
RELOAD4J_VERSION=1.2.25
SLF4J_VERSION=1.7.36

CP_DIR="$ROOT/.cache/kafka/$KAFKA_VERSION"
CP_FILE="$CP_DIR/classpath.txt"
PID_FILE="$KAFKA_DIR/kafka.pid"
PROPS="$KAFKA_DIR/server.properties"
LOG4J_PROPS="$KAFKA_DIR/log4j.properties"
LOG_DIR="$KAFKA_DIR/logs"          # log4j output (server.log) + JVM stdout/err
DATA_DIR="$KAFKA_DIR/data"         # log.dirs (topic data + KRaft metadata)
SERVER_LOG="$LOG_DIR/server.log"
OUT_LOG="$LOG_DIR/kafka.out"

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
  JAVA="$JAVA_HOME/bin/java"
else
  JAVA=java
fi

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# --- classpath (Maven) -------------------------------------------------------

# The throwaway pom whose only purpose is to let the dependency plugin resolve
# the broker's full runtime classpath into ~/.m2.
render_pom() {
  cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.firescroll</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- CLI tools (TopicCommand, ConsoleConsumer, ...) moved out of core in 3.x;
         handy for poking at the dev broker: scripts/kafka.sh tool ... -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- log4j 1.x API (Kafka's Log4jController uses it) + slf4j binding -->
    <dependency>
      <groupId>ch.qos.reload4j</groupId>
      <artifactId>reload4j</artifactId>
      <version>$RELOAD4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
}

# True if the cached classpath was built from the current pom and every jar in
# it is still present (e.g. ~/.m2 was not cleaned), so Maven can be skipped.
classpath_ok() {
  [[ -s "$CP_FILE" && -f "$CP_DIR/pom.xml" ]] || return 1
  [[ "$(render_pom)" == "$(cat "$CP_DIR/pom.xml")" ]] || return 1
  local IFS=: jar
  for jar in $(cat "$CP_FILE"); do
    [[ -f "$jar" ]] || return 1
  done
}

ensure_classpath() {
  classpath_ok && return 0
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch Kafka)"
  mkdir -p "$CP_DIR"
  log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION with Maven (first run only)..."
  render_pom >"$CP_DIR/pom.xml"
  local tmp="$CP_FILE.tmp.$$"
  if ! mvn -q -B -f "$CP_DIR/pom.xml" dependency:build-classpath \
      -Dmdep.includeScope=runtime -Dmdep.outputFile="$tmp" >"$CP_DIR/mvn.log" 2>&1; then
    tail -n 40 "$CP_DIR/mvn.log" >&2
    rm -f "$tmp"
    die "maven failed to resolve Kafka $KAFKA_VERSION (see $CP_DIR/mvn.log)"
  fi
  mv "$tmp" "$CP_FILE" # atomic: a half-written classpath is never used
  classpath_ok || die "resolved classpath is incomplete: $CP_FILE"
}

# --- process helpers ---------------------------------------------------------

running_pid() { service_pid "$PID_FILE" "kafka.Kafka $PROPS"; }

# --- config ------------------------------------------------------------------

write_config() {
  mkdir -p "$LOG_DIR" "$DATA_DIR"
  cat >"$PROPS" <<EOF
# Generated by scripts/kafka.sh - rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT,SASL_PLAINTEXT://$HOST:$KAFKA_SASL_PORT$EXTRA_LISTEN
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT,SASL_PLAINTEXT://$HOST:$KAFKA_SASL_PORT$EXTRA_ADVERTISED
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT$EXTRA_PROTOCOLS
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_firescroll="firescroll-secret";
log.dirs=$DATA_DIR
num.partitions=1
auto.create.topics.enable=false
# Single node: internal topics cannot have more than one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
# Consumers join immediately instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0
# Tests use short topic retention, so enforce it promptly. The (internal)
# initial delay would otherwise postpone the first retention pass until 30 s
# after every (re)start.
log.retention.check.interval.ms=1000
log.segment.delete.delay.ms=1000
log.initial.task.delay.ms=1000
# After an unclean exit (SIGKILL) the controller keeps the old broker
# registration until the session expires; shorten that from 9 s so a restart
# after a kill is quick too.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
EOF
  # Logs go to a file in the state dir only; chatty loggers are turned down.
  cat >"$LOG4J_PROPS" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$SERVER_LOG
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.coordinator.group=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.clients=WARN
log4j.logger.org.apache.kafka.common.utils.AppInfoParser=WARN
log4j.logger.kafka.authorizer.logger=WARN
EOF
}

# Format the KRaft metadata log once; later starts reuse the existing data.
format_storage() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local id
  # Cluster id = 16 random bytes, base64url without padding (Kafka's Uuid
  # format). Avoid a leading '-' which the CLI parser would take as a flag.
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* ]] && break
  done
  log "formatting storage (cluster id $id)"
  "$JAVA" -cp "$(cat "$CP_FILE")" -Dlog4j.configuration="file:$LOG4J_PROPS" \
    kafka.tools.StorageTool format -t "$id" -c "$PROPS" --ignore-formatted \
    >>"$OUT_LOG" 2>&1 || { tail -n 20 "$OUT_LOG" >&2; die "storage format failed"; }
}

# --- commands ----------------------------------------------------------------

cmd_start() {
  local pid
  if pid="$(running_pid)"; then
    echo "kafka already running (pid $pid) on $HOST:$KAFKA_PORT"
    return 0
  fi
  local p
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$KAFKA_SASL_PORT" "${EXTRA_PORTS[@]}"; do
    port_open "$HOST" "$p" && die "port $HOST:$p is already in use by another process"
  done

  ensure_classpath
  write_config
  # Keep the previous run's log aside so the readiness grep only sees this run.
  [[ -f "$SERVER_LOG" ]] && mv -f "$SERVER_LOG" "$SERVER_LOG.prev"
  [[ -f "$OUT_LOG" ]] && mv -f "$OUT_LOG" "$OUT_LOG.prev"
  format_storage

  rm -f "$PID_FILE" # stale: running_pid said no broker is alive

  # setsid: detach from the caller's process group/terminal so the broker
  # survives the calling shell; the inner bash writes its own pid and then
  # execs java, so the pid file names the JVM itself. 9>&- keeps the JVM
  # from inheriting (and forever holding) the start/stop lock.
  # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS is intentionally word-split
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    "$JAVA" $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$LOG4J_PROPS" -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$(cat "$CP_FILE")" kafka.Kafka "$PROPS" \
    </dev/null >>"$OUT_LOG" 2>&1 9>&- &

  local start=$SECONDS
  while ((SECONDS - start < KAFKA_START_TIMEOUT)); do
    if [[ -s "$PID_FILE" ]]; then
      pid="$(cat "$PID_FILE")"
      if ! kill -0 "$pid" 2>/dev/null; then
        log "broker process exited during startup; last log lines:"
        tail -n 40 "$SERVER_LOG" "$OUT_LOG" >&2 2>/dev/null || true
        rm -f "$PID_FILE"
        exit 1
      fi
      if port_open "$HOST" "$KAFKA_PORT" && grep -q "Kafka Server started" "$SERVER_LOG" 2>/dev/null; then
        echo "kafka ready on $HOST:$KAFKA_PORT"
        return 0
      fi
    elif ((SECONDS - start >= 10)); then
      die "broker process failed to launch (no pid file); see $OUT_LOG"
    fi
    sleep 0.2
  done
  log "timed out after ${KAFKA_START_TIMEOUT}s waiting for kafka; last log lines:"
  tail -n 40 "$SERVER_LOG" "$OUT_LOG" >&2 2>/dev/null || true
  # Don't leave a half-started broker behind: a later `start` would report
  # it as running.
  cmd_stop >/dev/null
  exit 1
}

cmd_stop() {
  local wipe=0 pid
  [[ "${1:-}" == "--wipe" ]] && wipe=1
  if pid="$(running_pid)"; then
    stop_process kafka "$pid" "$KAFKA_STOP_TIMEOUT"
    echo "kafka stopped"
  else
    echo "kafka not running"
  fi
  rm -f "$PID_FILE"
  if ((wipe)); then
    rm -rf "$KAFKA_DIR"
    echo "wiped $KAFKA_DIR"
  fi
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    echo "kafka running (pid $pid) on $HOST:$KAFKA_PORT"
  else
    echo "kafka not running"
    exit 3
  fi
}

# Run a Kafka CLI class against the dev broker's classpath, e.g.
#   scripts/kafka.sh tool org.apache.kafka.tools.TopicCommand \
#     --bootstrap-server 127.0.0.1:19092 --create --topic t
# Tool logging goes to stderr at WARN so stdout stays clean.
cmd_tool() {
  [[ $# -ge 1 ]] || usage
  ensure_classpath
  local l4j="$CP_DIR/tools-log4j.properties"
  printf '%s\n' 'log4j.rootLogger=WARN, stderr' \
    'log4j.appender.stderr=org.apache.log4j.ConsoleAppender' \
    'log4j.appender.stderr.Target=System.err' \
    'log4j.appender.stderr.layout=org.apache.log4j.PatternLayout' \
    'log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n' >"$l4j.$$"
  mv -f "$l4j.$$" "$l4j" # atomic, in case tools run concurrently
  exec "$JAVA" -Xmx256m -Dlog4j.configuration="file:$l4j" -cp "$(cat "$CP_FILE")" "$@"
}

usage() {
  echo "usage: $0 {start|stop [--wipe]|restart|status|classpath|tool <class> [args...]}" >&2
  exit 2
}

case "${1:-}" in
  start) take_lock "$KAFKA_DIR"; cmd_start ;;
  stop) take_lock "$KAFKA_DIR"; cmd_stop "${2:-}" ;;
  restart) take_lock "$KAFKA_DIR"; cmd_stop; cmd_start ;;
  status) cmd_status ;;
  classpath) ensure_classpath; cat "$CP_FILE"; echo ;;
  tool) shift; cmd_tool "$@" ;;
  *) usage ;;
esac
