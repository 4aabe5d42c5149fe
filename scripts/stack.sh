#!/usr/bin/env bash
# Run the whole stack on this machine, without Docker:
#   scripts/stack.sh up      start whatever is not running (Redis, Cassandra, one worker, the API)
#                            and return once GET /write reports healthy; safe to run again
#   scripts/stack.sh down    stop everything it started
#   scripts/stack.sh status  one line per component
# Pid files and logs: .run/. Ports: REDIS_PORT (6379), CASSANDRA_PORT (9042), PORT (8080),
# WORKER_METRICS_PORT (9100). Redis durability: REDIS_APPENDFSYNC (always; or everysec).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
run_dir=$root/.run
mkdir -p "$run_dir"
redis_port=${REDIS_PORT:-6379}
api_port=${PORT:-8080}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$redis_port/0}
export WORKER_METRICS_PORT=${WORKER_METRICS_PORT:-9100}
cli=$root/.venv/bin/kube-insight-logserver
log() { printf '[stack] %s\n' "$*"; }

# Alive means running: a killed child can linger as a zombie until it is reaped, and kill -0
# still succeeds on a zombie.
pid_running() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
alive() { [ -f "$run_dir/$1.pid" ] && pid_running "$(cat "$run_dir/$1.pid")"; }

redis_up() {
  if redis-cli -p "$redis_port" ping >/dev/null 2>&1; then
    alive redis || log "using the Redis already answering on port $redis_port"
    return 0
  fi
  mkdir -p "$run_dir/redis"
  local fsync=${REDIS_APPENDFSYNC:-always}
  log "starting Redis on 127.0.0.1:$redis_port (AOF, appendfsync $fsync, noeviction)"
  # A 2xx from the API means the batch is in Redis. With appendfsync always (the default, see
  # README "Durability") Redis has it on disk before it answers, so not even a host crash loses an
  # acknowledged batch; everysec may lose the last second. noeviction makes a full Redis refuse
  # writes (503) instead of evicting queued logs.
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$run_dir/redis" \
    --appendonly yes --appendfsync "$fsync" --save '' \
    --maxmemory "${REDIS_MAXMEMORY:-2gb}" --maxmemory-policy noeviction \
    --daemonize yes --pidfile "$run_dir/redis.pid" --logfile "$run_dir/redis.log"
  for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "Redis did not start; see $run_dir/redis.log"; exit 1
}

start_process() {  # name, command...
  local name=$1; shift
  if alive "$name"; then return 0; fi
  log "starting $name (log $run_dir/$name.log)"
  nohup "$@" >> "$run_dir/$name.log" 2>&1 &
  echo $! > "$run_dir/$name.pid"
}

wait_healthy() {
  local answer
  for i in $(seq 1 120); do
    answer=$(curl -s -m 3 "http://127.0.0.1:$api_port/write" || true)
    case "$answer" in *'"healthy":true'*|*'"healthy": true'*) log "healthy: $answer"; return 0 ;; esac
    alive api || { log "the API exited; last lines of $run_dir/api.log:"; tail -n 20 "$run_dir/api.log"; exit 1; }
    [ $((i % 10)) -eq 0 ] && log "waiting for GET /write to report healthy (${i}s): $answer"
    sleep 1
  done
  log "GET /write not healthy after 120s: $answer"; exit 1
}

up() {
  redis_up
  scripts/cassandra.sh start
  start_process worker "$cli" worker
  start_process api "$cli" api --port "$api_port"
  wait_healthy
  alive worker || { log "the worker exited; see $run_dir/worker.log"; exit 1; }
}

stop_process() {
  local name=$1
  if alive "$name"; then
    local pid; pid=$(cat "$run_dir/$name.pid")
    log "stopping $name (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$run_dir/$name.pid"
}

down() {
  stop_process api
  stop_process worker
  scripts/cassandra.sh stop
  if alive redis; then
    log "stopping Redis"
    redis-cli -p "$redis_port" shutdown >/dev/null 2>&1 || stop_process redis
  fi
  rm -f "$run_dir/redis.pid"
}

status() {
  for name in redis cassandra worker api; do
    if alive "$name"; then echo "$name: running (pid $(cat "$run_dir/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
