#!/usr/bin/env bash
# A real single-node Apache Kafka 4.x broker (KRaft, broker+controller in one JVM) for tests, CI and demos,
# run from Maven Central jars (there is no Kafka in apt or npm).
#
#   scripts/kafka.sh start    resolve jars once, format storage once, start, wait until it answers (idempotent)
#   scripts/kafka.sh stop     SIGTERM, wait, then SIGKILL; data is kept (stop + start keeps topics and records)
#   scripts/kafka.sh status   exit 0 if running and answering, 3 if not
#   scripts/kafka.sh topics   list topics (kcat)
#   scripts/kafka.sh reset    stop and wipe the data dir
#   scripts/kafka.sh logs     tail the broker log
#
# Env: KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (KAFKA_PORT+1), KAFKA_DIR (<repo>/.kafka, git-ignored),
#      KAFKA_HEAP (512m), KAFKA_START_TIMEOUT seconds (120).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_DIR="${KAFKA_DIR:-$ROOT/.kafka}"
PORT="${KAFKA_PORT:-19092}"
CPORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
HEAP="${KAFKA_HEAP:-512m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
LIB="$KAFKA_DIR/lib"
DATA="$KAFKA_DIR/data"
PROPS="$KAFKA_DIR/server.properties"
PIDFILE="$KAFKA_DIR/broker.pid"
LOG="$KAFKA_DIR/broker.log"
POM="$ROOT/scripts/kafka/pom.xml"

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

mkdir -p "$KAFKA_DIR"

pid_alive() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# The broker answers when a metadata request lists it.
answers() {
  if command -v kcat >/dev/null 2>&1; then
    kcat -b "127.0.0.1:$PORT" -L -m 3 2>/dev/null | grep -q "broker 1 at"
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
  fi
}

ensure_jars() {
  # re-resolve when the pom changes (a version bump), never on every start
  local stamp="$LIB/.pom.sha256" want
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && ls "$LIB"/kafka_2.13-*.jar >/dev/null 2>&1; then return; fi
  command -v mvn >/dev/null || die "maven (mvn) is needed once to fetch the Kafka jars: apt-get install maven"
  log "resolving Kafka jars from Maven Central into $LIB (once)"
  rm -rf "$LIB"
  mvn -B -q -f "$POM" dependency:copy-dependencies -DoutputDirectory="$LIB" -DincludeScope=runtime >&2
  echo "$want" >"$stamp"
}

java_cp() { echo "$LIB/*"; }

write_props() {
  cat >"$PROPS" <<EOF
# written by scripts/kafka.sh on every start; edit the script, not this file
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:$CPORT
log.dirs=$DATA
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=48
log.segment.bytes=67108864
EOF
}

format_once() {
  [[ -f "$DATA/meta.properties" ]] && return
  local id
  id="$(java -cp "$(java_cp)" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
  [[ -n "$id" ]] || die "StorageTool random-uuid gave no cluster id"
  log "formatting $DATA (cluster $id)"
  java -cp "$(java_cp)" kafka.tools.StorageTool format --standalone -t "$id" -c "$PROPS" >>"$LOG" 2>&1 \
    || die "storage format failed, see $LOG"
}

start() {
  if pid_alive && answers; then log "already running (pid $(cat "$PIDFILE"), 127.0.0.1:$PORT)"; return 0; fi
  if pid_alive; then
    log "pid $(cat "$PIDFILE") is alive but not answering yet; waiting"
  else
    # Another broker (another checkout's) already on the port would answer for ours and hide a failed start.
    answers && die "127.0.0.1:$PORT already answers but is not this checkout's broker: stop it or set KAFKA_PORT"
    local t0=$SECONDS
    ensure_jars
    write_props
    format_once
    log "starting broker on 127.0.0.1:$PORT (controller $CPORT), log $LOG"
    # setsid: the broker outlives the shell (and the test runner) that started it; 9>&- keeps the start
    # lock out of the JVM, or the broker would hold it for its whole life.
    setsid nohup java -Xms128m -Xmx"$HEAP" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
      -Dorg.slf4j.simpleLogger.defaultLogLevel=info -Dorg.slf4j.simpleLogger.showDateTime=true \
      -Dorg.slf4j.simpleLogger.log.org.apache.kafka.raft=warn -Dorg.slf4j.simpleLogger.log.state.change.logger=warn \
      -cp "$(java_cp)" kafka.Kafka "$PROPS" >>"$LOG" 2>&1 </dev/null 9>&- &
    echo $! >"$PIDFILE"
    log "prepared in $((SECONDS - t0)) s"
  fi
  local t1=$SECONDS
  until answers; do
    pid_alive || { tail -n 30 "$LOG" >&2; rm -f "$PIDFILE"; die "broker exited during start-up"; }
    (( SECONDS - t1 < START_TIMEOUT )) || die "broker did not answer within ${START_TIMEOUT}s, see $LOG"
    sleep 0.5
  done
  log "up (pid $(cat "$PIDFILE")) after $((SECONDS - t1)) s"
}

stop() {
  if ! pid_alive; then rm -f "$PIDFILE"; log "not running"; return 0; fi
  local pid
  pid="$(cat "$PIDFILE")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then log "no exit after 30 s, SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  rm -f "$PIDFILE"
  log "stopped"
}

status() {
  if pid_alive && answers; then echo "running pid=$(cat "$PIDFILE") bootstrap=127.0.0.1:$PORT"; return 0; fi
  if pid_alive; then echo "starting pid=$(cat "$PIDFILE")"; return 3; fi
  echo "stopped"
  return 3
}

# Starts and stops may race (CI and a test's globalSetup): one at a time.
locked() {
  exec 9>"$KAFKA_DIR/.lock"
  flock -w 300 9 || die "could not take $KAFKA_DIR/.lock"
  "$@"
}

case "${1:-}" in
  start) locked start ;;
  stop) locked stop ;;
  restart) locked stop; locked start ;;
  status) status ;;
  topics) kcat -b "127.0.0.1:$PORT" -L -m 5 | sed -n 's/^  topic "\([^"]*\)".*/\1/p' | grep -v '^__' | sort ;;
  reset) locked stop; rm -rf "$DATA"; log "data wiped" ;;
  logs) tail -n "${2:-50}" "$LOG" ;;
  *) echo "usage: $0 start|stop|restart|status|topics|reset|logs" >&2; exit 2 ;;
esac
