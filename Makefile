# The two commands: `make up` runs the service, `make test` runs every test (after `make up`).
.PHONY: install lock up down status cluster-up cluster-down bench-cluster test test-unit test-integration test-faults bench soak redis-ha-up redis-ha-down redis-ha-status

install:
	scripts/install.sh

# Refresh requirements.lock and requirements-test.lock to the newest versions pyproject.toml allows.
lock:
	scripts/lock.sh

up: install
	scripts/stack.sh up

down:
	scripts/stack.sh down

status:
	scripts/stack.sh status

# A Redis that fails over (primary 6380, replica 6381, Sentinels 26380-26382; README "Redis through Sentinel").
redis-ha-up:
	scripts/redis-ha.sh up

redis-ha-down:
	scripts/redis-ha.sh down

redis-ha-status:
	scripts/redis-ha.sh status

# A local three-node Cassandra cluster on 127.0.0.1-3:9142, beside the single node, and the Redis that
# fails over (redis-ha-up) (README, "Running as a cluster").
cluster-up: install
	scripts/cassandra-cluster.sh up
	scripts/redis-ha.sh up

cluster-down:
	scripts/redis-ha.sh down
	scripts/cassandra-cluster.sh down

test: up
	@echo "[test] unit, integration and fault tests against the stack started by make up"
	.venv/bin/pytest -v -s --durations=10

test-unit: install
	.venv/bin/pytest -v -m "not integration"

test-integration: up
	.venv/bin/pytest -v -m "integration and not faults"

test-faults: up
	.venv/bin/pytest -v -s -m faults

# make bench LOKI_URL=http://127.0.0.1:3100 LOKI_DATA=<its data dir>: a running Loki (built from source, README
# "Measured performance") measured in the same run, on the same corpus.
bench: up
	.venv/bin/python bench/run.py

# The end-to-end and bare-writer rates at replication factor 3 on the cluster of make cluster-up.
bench-cluster: up cluster-up
	.venv/bin/python bench/run.py --cluster

# Steady ingest + queries for 3 minutes, watching API and worker memory (bench/soak.py --help).
soak: up
	.venv/bin/python bench/soak.py
