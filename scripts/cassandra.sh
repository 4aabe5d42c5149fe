#!/usr/bin/env bash
# A real Cassandra 5.0 node from Maven Central, run without Docker: the single development node,
# or one node of the local cluster (scripts/cassandra-cluster.sh runs three through this script).
#   scripts/cassandra.sh install   resolve cassandra-all + dependencies into .cassandra/lib (once)
#   scripts/cassandra.sh start     start the node in the background (no-op when already up), wait for CQL
#   scripts/cassandra.sh stop      stop it (SIGTERM, then SIGKILL after a grace period)
#   scripts/cassandra.sh status    exit 0 when the node answers on its CQL port
# Settings (env): CASSANDRA_LISTEN_ADDRESS (127.0.0.1; listen and CQL address),
# CASSANDRA_PORT (9042), CASSANDRA_STORAGE_PORT (7000), CASSANDRA_JMX_PORT (7199),
# CASSANDRA_SEEDS (the node itself: address:storage_port, comma-separated),
# CASSANDRA_HEAP (1G), RUN_DIR (.run), CASSANDRA_START_TIMEOUT (seconds, 240).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
here="$root/scripts/cassandra"
lib="$root/.cassandra/lib"
run_dir=${RUN_DIR:-$root/.run}
home="$run_dir/cassandra"
pid_file="$run_dir/cassandra.pid"
address=${CASSANDRA_LISTEN_ADDRESS:-127.0.0.1}
native_port=${CASSANDRA_PORT:-9042}
storage_port=${CASSANDRA_STORAGE_PORT:-7000}
jmx_port=${CASSANDRA_JMX_PORT:-7199}
seeds=${CASSANDRA_SEEDS:-$address:$storage_port}
heap=${CASSANDRA_HEAP:-1G}
start_timeout=${CASSANDRA_START_TIMEOUT:-240}

log() { printf '[cassandra] %s\n' "$*"; }

port_open() { (exec 3<>"/dev/tcp/$address/$1") 2>/dev/null; }

running_pid() {
  [ -f "$pid_file" ] || return 1
  local pid; pid=$(cat "$pid_file")
  # A zombie (killed, not yet reaped) still answers kill -0: it is not running.
  kill -0 "$pid" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && echo "$pid"
}

install() {
  if [ -f "$lib/.complete" ]; then return 0; fi
  log "resolving org.apache.cassandra:cassandra-all from Maven Central into .cassandra/lib"
  mkdir -p "$lib"
  # Maven reports an ERROR for cassandra-parent's system-scoped jmc dependencies; it is harmless.
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$lib" -DincludeScope=runtime
  touch "$lib/.complete"
  log "installed $(ls "$lib"/*.jar | wc -l) jars"
}

write_config() {
  mkdir -p "$home/data" "$home/commitlog" "$home/hints" "$home/saved_caches" "$home/cdc_raw" "$home/logs"
  sed -e "s#@DIR@#$home#g" -e "s#@ADDRESS@#$address#g" -e "s#@SEEDS@#$seeds#g" \
      -e "s#@STORAGE_PORT@#$storage_port#g" -e "s#@NATIVE_PORT@#$native_port#g" \
      "$here/cassandra.yaml.template" > "$home/cassandra.yaml"
}

start() {
  install
  if running_pid >/dev/null && port_open "$native_port"; then
    log "already running (pid $(cat "$pid_file")) on $address:$native_port"; return 0
  fi
  if ! running_pid >/dev/null; then
    write_config
    local jamm; jamm=$(ls "$lib"/jamm-*.jar | head -n 1)
    log "starting on $address:$native_port (heap $heap, log $home/logs/system.log)"
    # shellcheck disable=SC2046
    nohup java $(grep -v '^#' "$here/jvm17.options") \
      -Xms"$heap" -Xmx"$heap" -javaagent:"$jamm" \
      -Dcassandra.config="file://$home/cassandra.yaml" \
      -Dcassandra-foreground=yes \
      -Dcassandra.storagedir="$home" \
      -Dcassandra.logdir="$home/logs" \
      -Dlogback.configurationFile="$here/logback.xml" \
      -Dcassandra.jmx.local.port="$jmx_port" \
      -Dcassandra.skip_wait_for_gossip_to_settle=0 \
      -Dcassandra.ring_delay_ms=1000 \
      -Dcassandra.superuser_setup_delay_ms=0 \
      -Dcassandra.load_ring_state=false \
      -cp "$lib/*" org.apache.cassandra.service.CassandraDaemon \
      > "$home/logs/stdout.log" 2>&1 &
    echo $! > "$pid_file"
  fi
  wait_ready
}

wait_ready() {
  local waited=0
  while ! port_open "$native_port"; do
    if ! running_pid >/dev/null; then
      log "the JVM exited; last lines of its output:"; tail -n 30 "$home/logs/stdout.log" >&2; exit 1
    fi
    if [ "$waited" -ge "$start_timeout" ]; then
      log "not answering on $address:$native_port after ${start_timeout}s"; tail -n 30 "$home/logs/system.log" >&2; exit 1
    fi
    if [ $((waited % 10)) -eq 0 ]; then log "waiting for CQL on $address:$native_port (${waited}s)"; fi
    sleep 1; waited=$((waited + 1))
  done
  log "ready on $address:$native_port after ${waited}s"
}

stop() {
  local pid
  if ! pid=$(running_pid); then log "not running"; rm -f "$pid_file"; return 0; fi
  log "stopping pid $pid"
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$pid_file"; log "stopped"; return 0; }; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true; rm -f "$pid_file"; log "killed"
}

status() { running_pid >/dev/null && port_open "$native_port"; }

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
