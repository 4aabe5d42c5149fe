"""The store against the real Cassandra: settings that disagree with an existing keyspace, a changed
TTL, and batches too large for one request."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cassandra.cluster import Cluster

from common import schema
from common.records import LogRow
from common.row_keys import bucket_of
from common.store import CassandraStore, StoreConfigError
from tests.conftest import with_changes
from tests.faults.processes import settings_env
from tests.integration.pipeline import unique
from tests.store_reads import stored_lines as container_lines

pytestmark = pytest.mark.integration

DAY, HOUR = 86400, 3600
REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def own_keyspace(integration_settings):
    """Settings for a keyspace of this test's own, dropped afterwards."""
    settings = with_changes(integration_settings,
                            cassandra_keyspace=f"{integration_settings.cassandra_keyspace}_{uuid.uuid4().hex[:6]}")
    yield settings
    cluster = Cluster(list(settings.cassandra_hosts), port=settings.cassandra_port)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
    finally:
        cluster.shutdown()


def create(settings) -> None:
    store = CassandraStore(settings)
    try:
        store.connect()
    finally:
        store.close()


class CountedCluster(Cluster):
    built: list[Cluster] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        CountedCluster.built.append(self)


def test_a_bucket_size_unlike_the_keyspaces_fails_saying_what_to_change_and_leaks_no_cluster(
        own_keyspace, monkeypatch):
    create(with_changes(own_keyspace, cassandra_bucket_seconds=DAY))
    monkeypatch.setattr("common.store.Cluster", CountedCluster)
    monkeypatch.setattr(CountedCluster, "built", [])
    store = CassandraStore(with_changes(own_keyspace, cassandra_bucket_seconds=HOUR))
    for attempt in (store.connect, lambda: store.ping(timeout=2)):  # a job, a health probe
        with pytest.raises(StoreConfigError, match=f"Set CASSANDRA_BUCKET_SECONDS={DAY}"):
            attempt()
    assert len(CountedCluster.built) == 1, "the error is remembered: no Cluster per attempt"
    assert CountedCluster.built[0].is_shutdown


def test_a_worker_whose_bucket_size_is_unlike_the_keyspaces_exits_non_zero_at_start_saying_so(own_keyspace):
    create(with_changes(own_keyspace, cassandra_bucket_seconds=DAY))
    env = settings_env(with_changes(own_keyspace, queue_name=unique("bucket-mismatch")),
                       CASSANDRA_BUCKET_SECONDS=str(HOUR))
    # this tree's code, whichever tree the virtualenv's console script was installed from
    worker = subprocess.run([sys.executable, "-m", "cli.main", "worker"], cwd=REPOSITORY, env=env,
                            capture_output=True, text=True, timeout=60)
    assert worker.returncode == 2
    assert f"Set CASSANDRA_BUCKET_SECONDS={DAY}" in worker.stderr


def test_a_changed_ttl_is_applied_to_the_existing_tables_and_logged(own_keyspace, caplog):
    create(with_changes(own_keyspace, cassandra_ttl_seconds=7 * DAY))
    changed = with_changes(own_keyspace, cassandra_ttl_seconds=DAY)
    store = CassandraStore(changed)
    with caplog.at_level(logging.WARNING, logger="common.store"):
        session = store.connect()
    try:
        ttls = dict(session.execute(
            "SELECT table_name, default_time_to_live FROM system_schema.tables WHERE keyspace_name = %s",
            (own_keyspace.cassandra_keyspace,)))
        store.write([LogRow("ns", "pod", "c", 1_700_000_000 * 10**9, "a line")])
        table, column = ((schema.BLOCK_TABLE, "data") if changed.cassandra_layout == "blocks"
                         else (schema.LOG_TABLE, "log"))
        (line_ttl,) = session.execute(
            f"SELECT TTL({column}) FROM {own_keyspace.cassandra_keyspace}.{table} "
            "WHERE namespace = 'ns' AND pod_name = 'pod' AND container_name = 'c' AND bucket = %s",
            (bucket_of(1_700_000_000 * 10**9, changed.cassandra_bucket_seconds),)).one()
    finally:
        store.close()
    index_ttl = schema.index_ttl_seconds(changed)
    assert ttls == {schema.LOG_TABLE: DAY, schema.BLOCK_TABLE: DAY, schema.STREAM_INDEX_TABLE: index_ttl,
                    schema.NAMESPACE_INDEX_TABLE: index_ttl, schema.SERIES_INDEX_TABLE: index_ttl,
                    schema.SETTINGS_TABLE: 0}
    assert DAY - 60 < line_ttl <= DAY
    assert (f"event=schema_changed table={own_keyspace.cassandra_keyspace}.{schema.LOG_TABLE} "
            f"option=default_time_to_live old={7 * DAY} new={DAY}") in caplog.text


def big_labelled_rows(namespace: str, count: int = 300) -> list[LogRow]:
    """~20 MB in one partition, nearly all of it labels: more than Cassandra takes in one request
    (native_transport_max_message_size, 16 MiB by default)."""
    labels = {f"annotation-{i}": "x" * 1024 for i in range(64)}
    return [LogRow(namespace, "pod", "c", 1_700_000_000 * 10**9 + i, f"line {i}", labels=labels)
            for i in range(count)]


def stored_lines(store: CassandraStore, namespace: str) -> list[str]:
    start = 1_700_000_000 * 10**9
    return [log for _, log in container_lines(store, namespace, "pod", "c", start, start + 10**9,
                                           bucket_seconds=store.bucket_seconds)]


def test_a_batch_with_large_labels_is_written_in_requests_cassandra_accepts(real_store):
    namespace = unique("big-labels")
    rows = big_labelled_rows(namespace)
    real_store.write(rows)
    assert stored_lines(real_store, namespace) == [row.log for row in rows]


def test_a_request_cassandra_finds_too_large_is_split_until_accepted(real_rows_store, monkeypatch, caplog):
    # The rows layout's batches (a block keeps a container's labels once: these rows make a small one).
    monkeypatch.setattr("common.store.BATCH_BYTES_LIMIT", 2**40)  # the whole partition in one request
    namespace = unique("split")
    rows = big_labelled_rows(namespace)
    with caplog.at_level(logging.WARNING, logger="common.store"):
        real_rows_store.write(rows)
    assert stored_lines(real_rows_store, namespace) == [row.log for row in rows]
    assert "event=write_split rows=300 into=150+150" in caplog.text
    assert "exceeds allowed maximum" in caplog.text
