# The two commands: `make up` runs the service, `make test` runs every test (after `make up`).
.PHONY: install up down status test test-unit test-integration

install:
	scripts/install.sh

up: install
	scripts/stack.sh up

down:
	scripts/stack.sh down

status:
	scripts/stack.sh status

test: up
	@echo "[test] unit and integration tests against the stack started by make up"
	.venv/bin/pytest -v --durations=10

test-unit: install
	.venv/bin/pytest -v -m "not integration"

test-integration: up
	.venv/bin/pytest -v -m integration
