#!/usr/bin/env bash
# A local three-node Cassandra 5.0 cluster, each node run by scripts/cassandra.sh (same jars, JVM
# options and config template), beside the single development node on 127.0.0.1:9042/7000/7199.
#   scripts/cassandra-cluster.sh up       start every node not running, wait until each sees all three up
#   scripts/cassandra-cluster.sh down     stop every node (data stays in .run/cluster/nodeN)
#   scripts/cassandra-cluster.sh status   exit 0 when all three answer CQL and see each other up
#   scripts/cassandra-cluster.sh pid N    the pid of node N (1-3), for fault tests
# Node N listens on 127.0.0.N: CQL CLUSTER_CQL_PORT (9142), storage CLUSTER_STORAGE_PORT (7100), JMX
# 7200+N. Settings (env): CLUSTER_HEAP (512M per node), CLUSTER_RUN_DIR (.run/cluster),
# CLUSTER_START_TIMEOUT (seconds, 300), PYTHON (.venv/bin/python: runs the driver check).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
run_dir=${CLUSTER_RUN_DIR:-$root/.run/cluster}
cql_port=${CLUSTER_CQL_PORT:-9142}
storage_port=${CLUSTER_STORAGE_PORT:-7100}
heap=${CLUSTER_HEAP:-512M}
start_timeout=${CLUSTER_START_TIMEOUT:-300}
python=${PYTHON:-$root/.venv/bin/python}
nodes=(1 2 3)
# Every node is a seed: a brand-new cluster's nodes then all start at once, none bootstraps
# (there is no data to stream), and a restarted node finds the others through any of them.
seeds=$(printf '127.0.0.%s:'"$storage_port"',' "${nodes[@]}"); seeds=${seeds%,}

log() { printf '[cluster] %s\n' "$*"; }

node() {  # node N COMMAND: scripts/cassandra.sh COMMAND for node N
  local n=$1; shift
  CASSANDRA_LISTEN_ADDRESS=127.0.0.$n CASSANDRA_PORT=$cql_port CASSANDRA_STORAGE_PORT=$storage_port \
  CASSANDRA_JMX_PORT=$((7200 + n)) CASSANDRA_SEEDS=$seeds CASSANDRA_HEAP=$heap \
  CASSANDRA_START_TIMEOUT=$start_timeout RUN_DIR=$run_dir/node$n \
    "$root/scripts/cassandra.sh" "$@"
}

all_up() {  # every node's driver view: three hosts, all up, one schema version
  "$python" - "$cql_port" "$@" <<'PY'
import sys
from cassandra.cluster import Cluster
port, quiet = int(sys.argv[1]), len(sys.argv) > 2
cluster = Cluster([f"127.0.0.{n}" for n in (1, 2, 3)], port=port, connect_timeout=3, control_connection_timeout=3)
try:
    session = cluster.connect()
    up = sorted(h.address for h in cluster.metadata.all_hosts() if h.is_up)
    agreed = cluster.control_connection.wait_for_schema_agreement(wait_time=10)
    if not quiet:
        print(f"[cluster] driver sees {len(up)} hosts up ({', '.join(up)}), schema agreed: {agreed}")
    sys.exit(0 if len(up) == 3 and agreed else 1)
except Exception as error:
    if not quiet:
        print(f"[cluster] driver check failed: {error}")
    sys.exit(1)
finally:
    cluster.shutdown()
PY
}

up() {
  "$root/scripts/cassandra.sh" install
  local started; started=$(date +%s)
  log "starting nodes ${nodes[*]} at once (heap $heap each, CQL 127.0.0.N:$cql_port, data $run_dir/nodeN)"
  local pids=() n
  for n in "${nodes[@]}"; do node "$n" start & pids+=($!); done
  local failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  if [ "$failed" -ne 0 ]; then log "a node failed to start"; exit 1; fi
  # Gossip may still flap a node just after its start: up means two checks in a row, a second apart.
  local waited=0 passes=0
  while [ "$passes" -lt 2 ]; do
    if all_up quiet; then passes=$((passes + 1)); else passes=0; fi
    if [ "$waited" -ge 60 ]; then all_up || true; log "the nodes do not see each other after ${waited}s"; exit 1; fi
    if [ "$passes" -lt 2 ]; then sleep 1; waited=$((waited + 1)); fi
  done
  all_up
  log "up after $(( $(date +%s) - started ))s"
}

down() {
  local n
  for n in "${nodes[@]}"; do node "$n" stop & done
  wait
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) all_up ;;
  pid) cat "$run_dir/node${2:?node number}/cassandra.pid" ;;
  *) echo "usage: $0 up|down|status|pid N" >&2; exit 2 ;;
esac
