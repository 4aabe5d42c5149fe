"""Merging small blocks on the real Cassandra (CassandraStore.merge_small_blocks): fewer blocks, and
every line read exactly once before, during (a merge cut between its writes and its deletes) and
after, however often and by how many it is run."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest

from common.block_merge import SMALL_BLOCK_LINES
from common.schema import BLOCK_TABLE
from common.store import CassandraStore
from tests.integration.test_blocks_layout import BUCKET, block_count, lines_of, logs, read

pytestmark = pytest.mark.integration

SMALL_WRITES = 40
LINES_PER_WRITE = 25


@pytest.fixture
def namespace() -> str:
    return f"merge-{uuid.uuid4().hex[:10]}"


def write_small(store, namespace: str, writes: int = SMALL_WRITES, per_write: int = LINES_PER_WRITE) -> list[str]:
    """`writes` writes of `per_write` consecutive lines (a ms apart) of one container: a small block each."""
    rows = lines_of(namespace, writes * per_write, ts=lambda i: BUCKET * 10**9 + 60 * 10**9 + i * 10**6)
    for first in range(0, len(rows), per_write):
        store.write(rows[first:first + per_write])
    return [row.log for row in rows]


def now_us() -> int:
    return int(time.time() * 1_000_000) + 1


def partition(namespace: str) -> tuple:
    return namespace, "web", "app", BUCKET


def stored_line_count(store, keyspace: str, namespace: str) -> int:
    """Lines held by the partition's blocks, copies included (a read shows each identity once)."""
    rows = store.connect().execute(
        f"SELECT line_count FROM {keyspace}.{BLOCK_TABLE} WHERE namespace = %s AND pod_name = 'web' "
        "AND container_name = 'app' AND bucket = %s", (namespace, BUCKET), timeout=60)
    return sum(row[0] for row in rows)


def test_small_blocks_merge_into_few_and_every_line_reads_once_in_order(real_blocks_store, integration_settings, namespace):
    written = write_small(real_blocks_store, namespace)
    keyspace = integration_settings.cassandra_keyspace
    assert block_count(real_blocks_store, keyspace, namespace) == SMALL_WRITES
    outcome = real_blocks_store.merge_small_blocks(partition(namespace), now_us())
    assert (outcome.blocks_in, outcome.blocks_out, outcome.lines) == (SMALL_WRITES, 1, len(written))
    assert block_count(real_blocks_store, keyspace, namespace) == 1
    assert logs(read(real_blocks_store, namespace)) == written
    assert stored_line_count(real_blocks_store, keyspace, namespace) == len(written)


def test_a_merge_cut_between_its_writes_and_its_deletes_shows_every_line_once_and_the_next_one_finishes(
        real_blocks_store, integration_settings, namespace, monkeypatch):
    written = write_small(real_blocks_store, namespace)
    keyspace = integration_settings.cassandra_keyspace
    sends = []
    real_send = CassandraStore._send

    def send_then_die(self, session, requests):
        sends.append(len(requests))
        if len(sends) == 2:  # the deletes
            raise KeyboardInterrupt("killed between the merged block's write and the deletes")
        return real_send(self, session, requests)

    monkeypatch.setattr(CassandraStore, "_send", send_then_die)
    with pytest.raises(KeyboardInterrupt):
        real_blocks_store.merge_small_blocks(partition(namespace), now_us())
    monkeypatch.undo()
    assert block_count(real_blocks_store, keyspace, namespace) == SMALL_WRITES + 1  # inputs and output
    assert logs(read(real_blocks_store, namespace)) == written  # each identity once
    again = real_blocks_store.merge_small_blocks(partition(namespace), now_us())
    assert again.blocks_in == SMALL_WRITES + 1 and again.blocks_out == 0  # the merged block was there already
    assert block_count(real_blocks_store, keyspace, namespace) == 1
    assert logs(read(real_blocks_store, namespace)) == written
    assert stored_line_count(real_blocks_store, keyspace, namespace) == len(written)


def test_two_merges_of_one_partition_at_once_lose_nothing_and_leave_no_copy(
        real_blocks_store, integration_settings, namespace):
    written = write_small(real_blocks_store, namespace)
    keyspace = integration_settings.cassandra_keyspace
    other = CassandraStore(integration_settings)
    try:
        cut = now_us()
        first = real_blocks_store.merge_small_blocks(partition(namespace), cut)
        second = other.merge_small_blocks(partition(namespace), cut)  # found the merged block: nothing to gain
    finally:
        other.close()
    assert first.blocks_in == SMALL_WRITES and second.blocks_in == 0
    assert logs(read(real_blocks_store, namespace)) == written
    assert stored_line_count(real_blocks_store, keyspace, namespace) == len(written)


def test_blocks_written_after_the_cut_off_are_left_for_a_later_merge(real_blocks_store, integration_settings, namespace):
    old = write_small(real_blocks_store, namespace, writes=10)
    cut = now_us()
    time.sleep(0.01)
    rows = lines_of(namespace, 3, ts=lambda i: BUCKET * 10**9 + 3000 * 10**9 + i, text="late {}", offset_base=10**9)
    real_blocks_store.write(rows)
    outcome = real_blocks_store.merge_small_blocks(partition(namespace), cut)
    assert outcome.blocks_in == 10 and outcome.small_later == 1
    assert block_count(real_blocks_store, integration_settings.cassandra_keyspace, namespace) == 2
    assert logs(read(real_blocks_store, namespace)) == old + ["late 0", "late 1", "late 2"]


def test_a_partition_of_big_blocks_is_not_rewritten(real_blocks_store, integration_settings, namespace):
    write_small(real_blocks_store, namespace, writes=2, per_write=SMALL_BLOCK_LINES)
    outcome = real_blocks_store.merge_small_blocks(partition(namespace), now_us())
    assert outcome.blocks_in == 0
    assert block_count(real_blocks_store, integration_settings.cassandra_keyspace, namespace) == 2


def test_a_merged_block_never_outlives_its_lines_ttl(integration_settings, namespace):
    settings = dataclasses.replace(integration_settings, cassandra_keyspace=f"{integration_settings.cassandra_keyspace}_ttl",
                                   cassandra_layout="blocks", cassandra_ttl_seconds=86_400)
    store = CassandraStore(settings)
    try:
        store.connect()
        write_small(store, namespace, writes=5)
        ttls_before = [row[0] for row in store.connect().execute(
            f"SELECT TTL(data) FROM {settings.cassandra_keyspace}.{BLOCK_TABLE} WHERE namespace = %s AND "
            "pod_name = 'web' AND container_name = 'app' AND bucket = %s", (namespace, BUCKET))]
        store.merge_small_blocks(partition(namespace), now_us())
        (ttl_after,) = [row[0] for row in store.connect().execute(
            f"SELECT TTL(data) FROM {settings.cassandra_keyspace}.{BLOCK_TABLE} WHERE namespace = %s AND "
            "pod_name = 'web' AND container_name = 'app' AND bucket = %s", (namespace, BUCKET))]
        assert ttl_after <= min(ttls_before)
    finally:
        store.connect().execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=120)
        store.close()
