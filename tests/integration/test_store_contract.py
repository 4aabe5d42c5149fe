"""The store contract: the same cases against the unit tests' FakeStore and the real Cassandra
store, so that the fake every API test relies on cannot drift from what Cassandra does."""

from __future__ import annotations

import uuid

import pytest

from common.log_store import Direction, LogStore, SeriesEntry
from common.partitions import bucket_of
from common.records import LogRow
from common.schema import LINE_ID_MAX, LINE_ID_MIN
from tests.unit.api_harness import FakeStore

HOUR_NS = 3600 * 10**9
T0 = 1_760_000_400 * 10**9  # the start of an hour bucket
BUCKET = bucket_of(T0, 3600)
WHOLE = ((0, LINE_ID_MIN), (2**63 - 1, LINE_ID_MAX))


@pytest.fixture(params=["fake", pytest.param("cassandra-rows", marks=pytest.mark.integration),
                        pytest.param("cassandra-blocks", marks=pytest.mark.integration)])
def store(request) -> LogStore:
    """The fake, and Cassandra writing each layout (CASSANDRA_LAYOUT=rows|blocks)."""
    if request.param == "fake":
        return FakeStore()
    return request.getfixturevalue("real_rows_store" if request.param == "cassandra-rows" else "real_blocks_store")


@pytest.fixture
def namespace() -> str:
    return f"contract-{uuid.uuid4().hex[:10]}"


def rows(namespace, *specs, pod="web", container="app"):
    """specs: (offset_ns, log[, stream])"""
    return [LogRow(namespace, pod, container, T0 + offset, log, *stream) for offset, log, *stream in specs]


def read(store, namespace, low=WHOLE[0], high=WHOLE[1], *, direction=Direction.FORWARD, page_size=1000,
         pod="web", container="app", bucket=BUCKET):
    return list(store.read_range((namespace, pod, container, bucket), low, high, direction=direction,
                                 page_size=page_size))


def test_written_lines_read_back_in_time_then_line_id_order(store, namespace):
    store.write(rows(namespace, (5, "c"), (1, "a"), (3, "b", "stderr")))
    lines = read(store, namespace)
    assert [(line.ts_ns - T0, line.log, line.stream) for line in lines] == [(1, "a", None), (3, "b", "stderr"),
                                                                            (5, "c", None)]
    assert [(line.pod_name, line.container_name) for line in lines] == [("web", "app")] * 3


def test_lines_of_one_nanosecond_keep_the_order_they_were_sent(store, namespace):
    store.write(rows(namespace, *[(7, f"frame {n}") for n in range(20)]))
    assert [line.log for line in read(store, namespace)] == [f"frame {n}" for n in range(20)]


def test_backward_reads_the_same_lines_in_reverse(store, namespace):
    store.write(rows(namespace, *[(n % 4, f"line {n}") for n in range(12)]))
    forward = read(store, namespace)
    assert read(store, namespace, direction=Direction.BACKWARD) == forward[::-1]


def test_both_bounds_are_inclusive_to_the_line_id(store, namespace):
    store.write(rows(namespace, *[(n, f"line {n}") for n in range(6)]))
    lines = read(store, namespace)
    low, high = lines[1], lines[4]
    between = read(store, namespace, (low.ts_ns, low.line_id), (high.ts_ns, high.line_id))
    assert [line.log for line in between] == ["line 1", "line 2", "line 3", "line 4"]


def test_the_same_batch_written_twice_leaves_one_row_per_line(store, namespace):
    batch = rows(namespace, (1, "a"), (1, "a"), (2, "b"))
    store.write(batch)
    store.write(batch)
    assert [line.log for line in read(store, namespace)] == ["a", "a", "b"]


def test_a_read_smaller_pages_than_its_lines_returns_them_all(store, namespace):
    store.write(rows(namespace, *[(n, f"line {n}") for n in range(25)]))
    assert len(read(store, namespace, page_size=4)) == 25


def test_a_read_sees_only_its_own_partition(store, namespace):
    store.write(rows(namespace, (1, "app line")) + rows(namespace, (1, "sidecar line"), container="sidecar")
                + rows(namespace, (HOUR_NS, "next hour")))
    assert [line.log for line in read(store, namespace)] == ["app line"]
    assert [line.log for line in read(store, namespace, bucket=BUCKET + 3600)] == ["next hour"]


def test_write_counts_the_partitions_it_touched(store, namespace):
    batch = rows(namespace, (1, "a"), (HOUR_NS, "b")) + rows(namespace, (2, "c"), pod="db", container="pg")
    assert store.write(batch) == 3


def test_the_index_lists_each_buckets_containers_and_namespaces_sorted(store, namespace):
    store.write(rows(namespace, (1, "a"), container="z-last") + rows(namespace, (1, "b"), container="a-first")
                + rows(namespace, (2, "c"), pod="db", container="pg") + rows(namespace, (HOUR_NS, "d")))
    assert store.containers_in_buckets(namespace, None, [BUCKET, BUCKET + 3600]) == [
        [("db", "pg"), ("web", "a-first"), ("web", "z-last")], [("web", "app")]]
    assert store.containers_in_buckets(namespace, "db", [BUCKET]) == [[("db", "pg")]]
    assert namespace in store.namespaces_in_buckets([BUCKET])[0]


def labelled(namespace, offset, log, stream=None, labels=None, pod="web", container="app"):
    return LogRow(namespace, pod, container, T0 + offset, log, stream, labels=labels)


def test_the_series_index_lists_each_label_set_with_lines_once_per_bucket(store, namespace):
    store.write([labelled(namespace, 1, "a", "stdout", {"app": "web"}), labelled(namespace, 2, "b", "stdout", {"app": "web"}),
                 labelled(namespace, 3, "c", "stderr", {"app": "web"}), labelled(namespace, 4, "d", None, None, container="side"),
                 labelled(namespace, HOUR_NS, "e", None, {"app": "web", "tier": "2"})])
    mine = [[entry for entry in entries if entry.namespace == namespace]
            for entries in store.series_in_buckets([BUCKET, BUCKET + 3600])]
    assert mine == [
        [SeriesEntry(namespace, "web", "app", "stderr", {"app": "web"}),
         SeriesEntry(namespace, "web", "app", "stdout", {"app": "web"}),
         SeriesEntry(namespace, "web", "side", None, {})],
        [SeriesEntry(namespace, "web", "app", None, {"app": "web", "tier": "2"})],
    ]


def test_a_new_label_set_of_an_indexed_container_is_indexed_too(store, namespace):
    store.write([labelled(namespace, 1, "a", "stdout", {"app": "web"})])
    store.write([labelled(namespace, 2, "b", "stdout", {"app": "web", "version": "2"})])
    (entries,) = store.series_in_buckets([BUCKET])
    assert [entry.labels for entry in entries if entry.namespace == namespace] == [
        {"app": "web"}, {"app": "web", "version": "2"}]


def test_a_burst_of_new_containers_is_indexed_whole(store, namespace):
    # 600 containers with 1 kB of labels each: their index entries fill many batches.
    labels = {f"label-{n}": "v" * 40 for n in range(20)}
    store.write([labelled(namespace, n, "a", "stdout", labels, pod=f"pod-{n:03d}") for n in range(600)])
    assert store.containers_in_buckets(namespace, None, [BUCKET]) == [[(f"pod-{n:03d}", "app") for n in range(600)]]
    (entries,) = store.series_in_buckets([BUCKET])
    assert sorted(entry.pod_name for entry in entries if entry.namespace == namespace) == [
        f"pod-{n:03d}" for n in range(600)]
    assert namespace in store.namespaces_in_buckets([BUCKET])[0]


def test_ping_answers_when_the_store_is_up(store):
    assert store.ping(timeout=5.0) is None
