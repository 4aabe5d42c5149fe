"""Shared fixtures. Integration fixtures talk to the real Redis and Cassandra started by `make up`;
when one is missing they fail (never skip), so CI cannot pass without them."""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid

import pytest

from common.settings import Settings

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CASSANDRA_HOST = os.environ.get("TEST_CASSANDRA_HOST", "127.0.0.1")
CASSANDRA_PORT = int(os.environ.get("TEST_CASSANDRA_PORT", "9042"))
# The layout the integration tests' workers write (CASSANDRA_LAYOUT), the default's unless
# KIL_TEST_LAYOUT names the other; the store contract and layout tests cover both either way.
TEST_LAYOUT = os.environ.get("KIL_TEST_LAYOUT", Settings().cassandra_layout)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def integration_settings() -> Settings:
    """Settings for the real services, with a keyspace and queue of this test session's own."""
    missing = [
        name for name, port in (("Redis", 6379), ("Cassandra", CASSANDRA_PORT))
        if not _port_open("127.0.0.1" if name == "Redis" else CASSANDRA_HOST, port)
    ]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not reachable: run `make up` first (make test does)")
    run = uuid.uuid4().hex[:8]
    return Settings(
        redis_url=REDIS_URL,
        queue_name=f"kil-test-{run}",
        cassandra_hosts=(CASSANDRA_HOST,),
        cassandra_port=CASSANDRA_PORT,
        cassandra_keyspace=f"kil_test_{run}",
        cassandra_consistency="ONE",
        job_retry_intervals=(0, 0, 0),
        worker_metrics_port=0,
        cassandra_layout=TEST_LAYOUT,
    )


def _store_writing(settings: Settings, layout: str):
    from common.store import CassandraStore

    store = CassandraStore(dataclasses.replace(settings, cassandra_layout=layout))
    store.connect()
    return store


@pytest.fixture(scope="session")
def real_blocks_store(integration_settings):
    """A store of the session's keyspace that writes the `blocks` layout, whatever KIL_TEST_LAYOUT says."""
    store = _store_writing(integration_settings, "blocks")
    yield store
    store.close()


@pytest.fixture(scope="session")
def real_rows_store(integration_settings):
    """A store of the session's keyspace that writes the `rows` layout, whatever KIL_TEST_LAYOUT says."""
    store = _store_writing(integration_settings, "rows")
    yield store
    store.close()


@pytest.fixture(scope="session")
def real_store(integration_settings):
    from common.store import CassandraStore

    store = CassandraStore(integration_settings)
    store.connect()
    yield store
    store.connect().execute(
        f"DROP KEYSPACE IF EXISTS {integration_settings.cassandra_keyspace}", timeout=60
    )
    store.close()


def with_changes(settings: Settings, **changes) -> Settings:
    return dataclasses.replace(settings, **changes)
