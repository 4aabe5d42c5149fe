#!/usr/bin/env bash
# A Redis that fails over, on this machine: a primary, one replica and three Sentinels, on loopback.
#   scripts/redis-ha.sh up      start them and return once the Sentinels agree on the primary
#   scripts/redis-ha.sh down    stop them
#   scripts/redis-ha.sh status  which node each Sentinel names the primary, and each node's role
#   scripts/redis-ha.sh start-node primary|replica   start that one node again (after a kill: the
#                               Sentinels make a returning old primary a replica of the new one)
# Then point the API and workers at the Sentinels:
#   REDIS_SENTINELS=127.0.0.1:26380,127.0.0.1:26381,127.0.0.1:26382 REDIS_SENTINEL_MASTER=logserver
# Ports: REDIS_HA_PRIMARY_PORT (6380), REDIS_HA_REPLICA_PORT (6381), REDIS_HA_SENTINEL_PORTS
# ("26380 26381 26382"); master name REDIS_SENTINEL_MASTER (logserver). Data, pid files and logs:
# REDIS_HA_DIR (.run/redis-ha). Durability as scripts/stack.sh: AOF, appendfsync REDIS_APPENDFSYNC
# (always), noeviction, on the primary and the replica alike (a replica promoted keeps it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${REDIS_HA_DIR:-$root/.run/redis-ha}
primary_port=${REDIS_HA_PRIMARY_PORT:-6380}
replica_port=${REDIS_HA_REPLICA_PORT:-6381}
sentinel_ports=${REDIS_HA_SENTINEL_PORTS:-26380 26381 26382}
master=${REDIS_SENTINEL_MASTER:-logserver}
log() { printf '[redis-ha] %s\n' "$*"; }

redis_node() {  # name, port, extra arguments...
  local name=$1 port=$2; shift 2
  mkdir -p "$dir/$name"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/$name" \
    --appendonly yes --appendfsync "${REDIS_APPENDFSYNC:-always}" --save '' \
    --maxmemory "${REDIS_MAXMEMORY:-2gb}" --maxmemory-policy noeviction \
    --daemonize yes --pidfile "$dir/$name.pid" --logfile "$dir/$name.log" "$@"
}

wait_for() {  # what, command...
  local what=$1; shift
  for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "$what did not happen; logs in $dir"; exit 1
}

up() {
  mkdir -p "$dir"
  log "primary on 127.0.0.1:$primary_port, replica on $replica_port, Sentinels on ${sentinel_ports// /, }"
  start_node primary
  wait_for "the primary to answer" redis-cli -p "$primary_port" ping
  start_node replica
  wait_for "the replica to sync" sh -c "redis-cli -p $replica_port info replication | grep -q 'master_link_status:up'"
  for port in $sentinel_ports; do
    # A Sentinel rewrites its own configuration file (what it learns of replicas and peers).
    cat > "$dir/sentinel-$port.conf" <<CONF
port $port
bind 127.0.0.1
dir $dir
daemonize yes
pidfile $dir/sentinel-$port.pid
logfile $dir/sentinel-$port.log
sentinel monitor $master 127.0.0.1 $primary_port 2
sentinel down-after-milliseconds $master 5000
sentinel failover-timeout $master 30000
sentinel parallel-syncs $master 1
CONF
    redis-server "$dir/sentinel-$port.conf" --sentinel
  done
  for port in $sentinel_ports; do
    wait_for "Sentinel $port to see the replica" sh -c \
      "redis-cli -p $port sentinel replicas $master | grep -q $replica_port"
  done
  log "up: REDIS_SENTINELS=$(for p in $sentinel_ports; do printf '127.0.0.1:%s,' "$p"; done | sed 's/,$//') REDIS_SENTINEL_MASTER=$master"
}

stop_pid_file() {
  local file=$1
  [ -f "$file" ] || return 0
  local pid; pid=$(cat "$file")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$file"
}

down() {
  for port in $sentinel_ports; do stop_pid_file "$dir/sentinel-$port.pid"; done
  stop_pid_file "$dir/replica.pid"
  stop_pid_file "$dir/primary.pid"
  log "down"
}

start_node() {
  case "${1:-}" in
    primary) redis_node primary "$primary_port" ;;
    replica) redis_node replica "$replica_port" --replicaof 127.0.0.1 "$primary_port" ;;
    *) echo "usage: $0 start-node primary|replica" >&2; exit 2 ;;
  esac
}

status() {
  for port in $sentinel_ports; do
    log "Sentinel $port: primary $(redis-cli -p "$port" sentinel get-master-addr-by-name "$master" 2>/dev/null | paste -sd: || echo '(not answering)')"
  done
  for node in "primary $primary_port" "replica $replica_port"; do
    set -- $node
    log "$1 node on $2: $(redis-cli -p "$2" info replication 2>/dev/null | tr -d '\r' | grep '^role:' || echo '(not answering)')"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  start-node) start_node "${2:-}" ;;
  *) echo "usage: $0 up|down|status|start-node primary|replica" >&2; exit 2 ;;
esac
