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
#      KAFKA_LIB (KAFKA_DIR/lib: the jars),
#      KAFKA_HEAP (512m), KAFKA_START_TIMEOUT seconds (120).
#
# Optional authenticated listeners (off unless KAFKA_SASL_PORT is set; the PLAINTEXT listener stays as it is):
#      KAFKA_SASL_PORT      SASL_PLAINTEXT on this port, SASL_SSL (TLS) on the next one; mechanisms PLAIN,
#                           SCRAM-SHA-256 and SCRAM-SHA-512
#      KAFKA_SASL_USER / KAFKA_SASL_PASSWORD (cafe / cafe-secret): the one user, for PLAIN (JAAS) and SCRAM
#                           (credentials written by the storage format, so set them before the first start,
#                           or `reset`)
#   TLS: a self-signed PKCS12 keystore is made with keytool at start if missing, $KAFKA_DIR/tls/broker.p12 (CN
#   localhost, SAN 127.0.0.1); clients trust $KAFKA_DIR/tls/ca.pem.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_DIR="${KAFKA_DIR:-$ROOT/.kafka}"
PORT="${KAFKA_PORT:-19092}"
SASL_PORT="${KAFKA_SASL_PORT:-}"
SASL_USER="${KAFKA_SASL_USER:-cafe}"
SASL_PASSWORD="${KAFKA_SASL_PASSWORD:-cafe-secret}"
TLS_DIR="$KAFKA_DIR/tls"
CPORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
HEAP="${KAFKA_HEAP:-512m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
LIB="${KAFKA_LIB:-$KAFKA_DIR/lib}" # a second broker (another KAFKA_DIR) may share the jars
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

# A self-signed broker certificate for the SASL_SSL listener (keytool ships with the JDK).
ensure_keystore() {
  [[ -f "$TLS_DIR/broker.p12" && -f "$TLS_DIR/ca.pem" ]] && return
  command -v keytool >/dev/null || die "keytool (from the JDK) is needed for the TLS listener"
  mkdir -p "$TLS_DIR"
  rm -f "$TLS_DIR/broker.p12" "$TLS_DIR/ca.pem"
  keytool -genkeypair -alias broker -keyalg RSA -keysize 2048 -validity 3650 -dname "CN=localhost" \
    -ext "SAN=ip:127.0.0.1,dns:localhost" -ext "BC=ca:true" -keystore "$TLS_DIR/broker.p12" -storetype PKCS12 \
    -storepass broker-store -keypass broker-store >>"$LOG" 2>&1 || die "keytool could not make a keystore, see $LOG"
  keytool -exportcert -rfc -alias broker -keystore "$TLS_DIR/broker.p12" -storepass broker-store -file "$TLS_DIR/ca.pem" >>"$LOG" 2>&1 \
    || die "keytool could not export the certificate, see $LOG"
  log "made a self-signed broker keystore in $TLS_DIR (clients trust ca.pem)"
}

sasl_props() {
  local l
  local plain="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"$SASL_USER\" password=\"$SASL_PASSWORD\" user_$SASL_USER=\"$SASL_PASSWORD\";"
  local scram="org.apache.kafka.common.security.scram.ScramLoginModule required;"
  echo "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
  for l in sasl_plaintext sasl_ssl; do
    echo "listener.name.$l.plain.sasl.jaas.config=$plain"
    echo "listener.name.$l.scram-sha-256.sasl.jaas.config=$scram"
    echo "listener.name.$l.scram-sha-512.sasl.jaas.config=$scram"
  done
  echo "listener.name.sasl_ssl.ssl.keystore.location=$TLS_DIR/broker.p12"
  echo "listener.name.sasl_ssl.ssl.keystore.type=PKCS12"
  echo "listener.name.sasl_ssl.ssl.keystore.password=broker-store"
  echo "listener.name.sasl_ssl.ssl.key.password=broker-store"
}

write_props() {
  local listeners="PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT"
  local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [[ -n "$SASL_PORT" ]]; then
    listeners="$listeners,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT,SASL_SSL://127.0.0.1:$((SASL_PORT + 1))"
    protocols="$protocols,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
  fi
  cat >"$PROPS" <<EOF
# written by scripts/kafka.sh on every start; edit the script, not this file
process.roles=broker,controller
node.id=1
listeners=$listeners
advertised.listeners=$listeners
listener.security.protocol.map=$protocols
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
  if [[ -n "$SASL_PORT" ]]; then sasl_props >>"$PROPS"; fi
}

format_once() {
  [[ -f "$DATA/meta.properties" ]] && return
  local id
  id="$(java -cp "$(java_cp)" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
  [[ -n "$id" ]] || die "StorageTool random-uuid gave no cluster id"
  log "formatting $DATA (cluster $id)"
  local scram=()
  if [[ -n "$SASL_PORT" ]]; then
    scram=(--add-scram "SCRAM-SHA-256=[name=$SASL_USER,password=$SASL_PASSWORD]" --add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$SASL_PASSWORD]")
  fi
  java -cp "$(java_cp)" kafka.tools.StorageTool format --standalone -t "$id" -c "$PROPS" "${scram[@]}" >>"$LOG" 2>&1 \
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
    if [[ -n "$SASL_PORT" ]]; then ensure_keystore; fi
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
