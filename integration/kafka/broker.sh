#!/usr/bin/env bash
# broker.sh - run a real single-node Apache Kafka 4.x broker for weir's
# integration tests, straight from its Maven Central jars (no Docker, no
# Kafka distribution tarball).
#
#   broker.sh start DIR   resolve the jars (cached; their directory is written
#                         to DIR/jars), then start one combined
#                         KRaft broker+controller whose config, TLS material,
#                         data and logs live in DIR. Prints exactly one line on
#                         stdout: the PLAINTEXT bootstrap address 127.0.0.1:PORT.
#                         Also writes DIR/bootstrap, DIR/bootstrap.sasl
#                         (SASL_PLAINTEXT), DIR/bootstrap.sasl_ssl (SASL_SSL)
#                         and DIR/ca.pem (CA that signed the SASL_SSL cert).
#                         Ports, cluster id, certificates and data are kept in
#                         DIR, so start after stop reuses the same addresses
#                         and data. If a broker is already running for DIR its
#                         address is printed and nothing else happens.
#   broker.sh stop DIR    SIGTERM the broker (SIGKILL after 30 s); exit 0 if
#                         none is running.
#
# SASL listeners accept PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for the single
# test-only user weir / weir-secret. No authorizer, no ACLs.
#
# Environment:
#   WEIR_KAFKA_VERSION        Kafka version to run (default 4.1.1)
#   WEIR_KAFKA_JARS           jar cache directory
#                             (default: <this dir>/.jars/<version>, git-ignored)
#   WEIR_KAFKA_HEAP_OPTS      JVM heap flags (default "-Xms256m -Xmx768m")
#   WEIR_KAFKA_START_TIMEOUT  seconds to wait for the broker (default 90)
#   JAVA_HOME                 used for java if set
#
# Needs java (17+), mvn (only while the jar cache is incomplete), python3,
# openssl.

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly KAFKA_VERSION="${WEIR_KAFKA_VERSION:-4.1.1}"
readonly JARS="${WEIR_KAFKA_JARS:-$SCRIPT_DIR/.jars/$KAFKA_VERSION}"
readonly HEAP_OPTS="${WEIR_KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
readonly START_TIMEOUT="${WEIR_KAFKA_START_TIMEOUT:-90}"
readonly STOP_TIMEOUT=30
readonly SASL_USER=weir
readonly SASL_PASSWORD=weir-secret
readonly STARTED_MARKER='Kafka Server started'

if [[ -n "${JAVA_HOME:-}" ]]; then
  readonly JAVA="$JAVA_HOME/bin/java"
else
  readonly JAVA=java
fi

usage() {
  cat >&2 <<EOF
usage: $(basename "$0") start DIR   start a Kafka $KAFKA_VERSION broker in DIR, print its bootstrap address
       $(basename "$0") stop DIR    stop the broker running from DIR
EOF
  exit 2
}

log() { printf 'broker.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------- jar cache

# resolve_jars makes sure $JARS holds Kafka and its runtime dependencies.
# A complete cache (marked by .complete) is used without running Maven.
resolve_jars() {
  [[ -f "$JARS/.complete" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found and jar cache $JARS is incomplete"
  mkdir -p "$(dirname "$JARS")"
  local tmp
  tmp="$(mktemp -d "${JARS%/}.tmp.XXXXXX")"
  log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION into $JARS"
  if ! mvn -q -B -f "$SCRIPT_DIR/pom.xml" \
      -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies \
      -DincludeScope=runtime \
      -DoutputDirectory="$tmp" </dev/null >"$DIR/logs/mvn.log" 2>&1; then
    cat "$DIR/logs/mvn.log" >&2
    rm -rf "$tmp"
    die "mvn failed to resolve Kafka $KAFKA_VERSION"
  fi
  if [[ ! -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
    rm -rf "$tmp"
    die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"
  fi
  touch "$tmp/.complete"
  # Another start may have filled the cache meanwhile; keep the first one.
  if [[ -f "$JARS/.complete" ]]; then
    rm -rf "$tmp"
  else
    rm -rf "$JARS"
    mv "$tmp" "$JARS"
  fi
}

# ---------------------------------------------------------------- process

# pid_of prints the pid from DIR/broker.pid if that process is a live broker
# started for this DIR, and fails otherwise.
pid_of() {
  local pid args
  [[ -f "$DIR/broker.pid" ]] || return 1
  pid="$(<"$DIR/broker.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  args="$(ps -o args= -p "$pid" 2>/dev/null)" || return 1
  [[ "$args" == *"$DIR/server.properties"* ]] || return 1
  printf '%s\n' "$pid"
}

# alive succeeds while pid exists and is not a zombie.
alive() {
  local stat
  kill -0 "$1" 2>/dev/null || return 1
  stat="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ "$stat" != Z* ]]
}

# terminate sends SIGTERM, waits up to STOP_TIMEOUT seconds, then SIGKILLs.
terminate() {
  local pid="$1" deadline=$((SECONDS + STOP_TIMEOUT))
  kill -TERM "$pid" 2>/dev/null || true
  while alive "$pid"; do
    if ((SECONDS >= deadline)); then
      log "broker $pid did not exit within ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while alive "$pid"; do sleep 0.1; done
      break
    fi
    sleep 0.2
  done
}

tcp_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ---------------------------------------------------------------- state in DIR

# load_or_pick_ports sets PLAINTEXT_PORT, SASL_PORT, SASL_SSL_PORT and
# CONTROLLER_PORT, from DIR/ports if present, else picks free ones.
load_or_pick_ports() {
  if [[ ! -f "$DIR/ports" ]]; then
    python3 - >"$DIR/ports.tmp" <<'EOF'
import socket
names = ["PLAINTEXT_PORT", "SASL_PORT", "SASL_SSL_PORT", "CONTROLLER_PORT"]
socks = []
for name in names:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for name, s in zip(names, socks):
    print("%s=%d" % (name, s.getsockname()[1]))
for s in socks:
    s.close()
EOF
    mv "$DIR/ports.tmp" "$DIR/ports"
  fi
  local key value
  PLAINTEXT_PORT='' SASL_PORT='' SASL_SSL_PORT='' CONTROLLER_PORT=''
  while IFS='=' read -r key value; do
    [[ "$value" =~ ^[0-9]+$ ]] || continue
    case "$key" in
      PLAINTEXT_PORT) PLAINTEXT_PORT="$value" ;;
      SASL_PORT) SASL_PORT="$value" ;;
      SASL_SSL_PORT) SASL_SSL_PORT="$value" ;;
      CONTROLLER_PORT) CONTROLLER_PORT="$value" ;;
    esac
  done <"$DIR/ports"
  [[ -n "$PLAINTEXT_PORT" && -n "$SASL_PORT" && -n "$SASL_SSL_PORT" && -n "$CONTROLLER_PORT" ]] ||
    die "$DIR/ports is damaged; remove it (and DIR/data) to start afresh"
}

load_or_make_cluster_id() {
  if [[ ! -f "$DIR/cluster.id" ]]; then
    # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding.
    python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode())' \
      >"$DIR/cluster.id.tmp"
    mv "$DIR/cluster.id.tmp" "$DIR/cluster.id"
  fi
  CLUSTER_ID="$(<"$DIR/cluster.id")"
}

# make_tls creates, once, a self-signed CA (DIR/ca.pem) and a server key and
# certificate for 127.0.0.1 / localhost in DIR/tls/server.pem (PEM keystore:
# unencrypted PKCS#8 key followed by the certificate chain).
make_tls() {
  local tls="$DIR/tls"
  if [[ -f "$tls/server.pem" && -f "$tls/ca.pem" ]]; then
    cp "$tls/ca.pem" "$DIR/ca.pem"
    return 0
  fi
  command -v openssl >/dev/null || die "openssl not found"
  rm -rf "$tls"
  mkdir -p "$tls"
  chmod 700 "$tls"
  cat >"$tls/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  {
    openssl req -x509 -config "$tls/openssl.cnf" -extensions v3_ca \
      -newkey rsa:2048 -nodes -keyout "$tls/ca.key" -out "$tls/ca.pem" \
      -days 3650 -subj "/CN=weir integration test CA" &&
      openssl req -new -config "$tls/openssl.cnf" \
        -newkey rsa:2048 -nodes -keyout "$tls/server.key" -out "$tls/server.csr" \
        -subj "/CN=localhost" &&
      openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
        -CAcreateserial -CAserial "$tls/ca.srl" -days 3650 \
        -extfile "$tls/openssl.cnf" -extensions v3_server -out "$tls/server.crt"
  } >"$DIR/logs/tls.log" 2>&1 || { cat "$DIR/logs/tls.log" >&2; die "openssl failed"; }
  cat "$tls/server.key" "$tls/server.crt" "$tls/ca.pem" >"$tls/server.pem.tmp"
  chmod 600 "$tls/server.pem.tmp"
  mv "$tls/server.pem.tmp" "$tls/server.pem"
  cp "$tls/ca.pem" "$DIR/ca.pem"
}

write_server_properties() {
  local plain_jaas scram_jaas l
  plain_jaas="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"$SASL_USER\" password=\"$SASL_PASSWORD\" user_$SASL_USER=\"$SASL_PASSWORD\";"
  scram_jaas='org.apache.kafka.common.security.scram.ScramLoginModule required;'
  {
    cat <<EOF
# Generated by integration/kafka/broker.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$PLAINTEXT_PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT,SASL_SSL://127.0.0.1:$SASL_SSL_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PLAINTEXT_PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT,SASL_SSL://127.0.0.1:$SASL_SSL_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT

log.dirs=$DIR/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
# Few partitions for the internal topics: one node, and a faster first
# transactional or group request after a fresh start.
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4
transaction.max.timeout.ms=900000
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
EOF
    for l in sasl_plaintext sasl_ssl; do
      cat <<EOF
listener.name.$l.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.$l.plain.sasl.jaas.config=$plain_jaas
listener.name.$l.scram-sha-256.sasl.jaas.config=$scram_jaas
listener.name.$l.scram-sha-512.sasl.jaas.config=$scram_jaas
EOF
    done
    cat <<EOF
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$DIR/tls/server.pem
listener.name.sasl_ssl.ssl.client.auth=none
EOF
  } >"$DIR/server.properties.tmp"
  mv "$DIR/server.properties.tmp" "$DIR/server.properties"
}

write_log4j_config() {
  cat >"$DIR/log4j2.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by integration/kafka/broker.sh. -->
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="server" fileName="${sys:kafka.logs.dir}/server.log"
                 filePattern="${sys:kafka.logs.dir}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="100MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
    <RollingFile name="stateChange" fileName="${sys:kafka.logs.dir}/state-change.log"
                 filePattern="${sys:kafka.logs.dir}/state-change.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="100MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="kafka.network.RequestChannel$" level="WARN"/>
    <Logger name="state.change.logger" level="INFO" additivity="false">
      <AppenderRef ref="stateChange"/>
    </Logger>
  </Loggers>
</Configuration>
EOF
}

# set_java_args fills JAVA_ARGS with the JVM command line (cached jars,
# generated log4j2 config); callers append the main class and its arguments.
set_java_args() {
  local heap
  read -r -a heap <<<"$HEAP_OPTS"
  JAVA_ARGS=(
    "$JAVA" "${heap[@]}"
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
    -Dkafka.logs.dir="$DIR/logs"
    -Dlog4j2.configurationFile="$DIR/log4j2.xml"
    -cp "$JARS/*"
  )
}

# format_storage formats DIR/data once (cluster id, SCRAM credentials).
format_storage() {
  [[ -f "$DIR/data/meta.properties" ]] && return 0
  log "formatting $DIR/data (cluster $CLUSTER_ID)"
  if ! "${JAVA_ARGS[@]}" kafka.tools.StorageTool format \
      --config "$DIR/server.properties" \
      --cluster-id "$CLUSTER_ID" \
      --add-scram "SCRAM-SHA-256=[name=$SASL_USER,password=$SASL_PASSWORD]" \
      --add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$SASL_PASSWORD]" \
      --ignore-formatted \
      </dev/null >"$DIR/logs/format.log" 2>&1; then
    cat "$DIR/logs/format.log" >&2
    die "kafka storage format failed"
  fi
}

write_bootstrap_files() {
  printf '127.0.0.1:%s\n' "$PLAINTEXT_PORT" >"$DIR/bootstrap"
  printf '127.0.0.1:%s\n' "$SASL_PORT" >"$DIR/bootstrap.sasl"
  printf '127.0.0.1:%s\n' "$SASL_SSL_PORT" >"$DIR/bootstrap.sasl_ssl"
}

show_logs() {
  local f
  for f in "$DIR/logs/server.log" "$DIR/logs/broker.out"; do
    [[ -s "$f" ]] || continue
    printf '==> %s (last 40 lines) <==\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}

# ---------------------------------------------------------------- commands

cmd_start() {
  mkdir -p "$DIR"
  DIR="$(cd "$DIR" && pwd -P)"
  mkdir -p "$DIR/logs" "$DIR/data"

  # Serialize concurrent starts for the same DIR (released when we exit).
  if command -v flock >/dev/null; then
    exec 9>"$DIR/.start.lock"
    flock 9
  fi

  local pid
  if pid="$(pid_of)"; then
    load_or_pick_ports
    local deadline=$((SECONDS + START_TIMEOUT))
    until tcp_open "$PLAINTEXT_PORT"; do
      ((SECONDS < deadline)) || die "broker $pid for $DIR runs but port $PLAINTEXT_PORT is closed"
      sleep 0.2
    done
    printf '127.0.0.1:%s\n' "$PLAINTEXT_PORT"
    return 0
  fi
  rm -f "$DIR/broker.pid"

  command -v "$JAVA" >/dev/null || die "java not found"
  command -v python3 >/dev/null || die "python3 not found"
  resolve_jars
  # Tests run Kafka's own Java client from the same jars.
  printf '%s\n' "$JARS" >"$DIR/jars"
  load_or_pick_ports
  # Two brokers on one data dir corrupt its metadata log: refuse if something
  # (an untracked broker for DIR, or anything else) holds our ports.
  local port
  for port in "$PLAINTEXT_PORT" "$CONTROLLER_PORT"; do
    if tcp_open "$port"; then
      die "port $port (from $DIR/ports) is in use; is a broker for $DIR running without $DIR/broker.pid?"
    fi
  done
  set_java_args
  load_or_make_cluster_id
  make_tls
  write_server_properties
  write_log4j_config
  write_bootstrap_files
  format_storage

  # Only log lines written after this offset count as this start's.
  local offset=0
  [[ -f "$DIR/logs/server.log" ]] && offset="$(wc -c <"$DIR/logs/server.log")"
  printf '\n==== start %s ====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$DIR/logs/broker.out"

  # A simple command, so $! is the JVM itself. fd 9 (the start lock) is not
  # handed down: the lock must end with this script.
  "${JAVA_ARGS[@]}" kafka.Kafka "$DIR/server.properties" \
    </dev/null >>"$DIR/logs/broker.out" 2>&1 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$DIR/broker.pid"

  local deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    if ! alive "$pid"; then
      show_logs
      rm -f "$DIR/broker.pid"
      die "broker exited during startup (logs in $DIR/logs)"
    fi
    if [[ -f "$DIR/logs/server.log" ]] &&
      tail -c "+$((offset + 1))" "$DIR/logs/server.log" | grep -F "$STARTED_MARKER" >/dev/null &&
      tcp_open "$PLAINTEXT_PORT"; then
      break
    fi
    if ((SECONDS >= deadline)); then
      show_logs
      terminate "$pid"
      rm -f "$DIR/broker.pid"
      die "broker not ready after ${START_TIMEOUT}s (logs in $DIR/logs)"
    fi
    sleep 0.2
  done
  printf '127.0.0.1:%s\n' "$PLAINTEXT_PORT"
}

cmd_stop() {
  [[ -d "$DIR" ]] || return 0
  DIR="$(cd "$DIR" && pwd -P)"
  local pid
  if pid="$(pid_of)"; then
    terminate "$pid"
  fi
  rm -f "$DIR/broker.pid"
}

(($# == 2)) || usage
[[ -n "$2" ]] || usage
DIR="$2"
case "$1" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  *) usage ;;
esac
