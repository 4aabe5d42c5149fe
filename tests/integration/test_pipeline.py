"""End to end on the real Redis and Cassandra: POST /write -> queue -> worker -> Cassandra -> /query."""

from __future__ import annotations

import json

import pytest

from common.store import CassandraStore
from tests.conftest import with_changes
from tests.fixtures import fluent_bit_body
from tests.integration.pipeline import build_pipeline, unique
from tests.store_reads import stored_columns
from tests.records import fluent_bit_record

pytestmark = pytest.mark.integration

SEED_RECORD = {
    "date": 1525349097.094408,
    "kubernetes": {
        "docker_id": "e8b89cc4e292827b2f521c4c7d7b8807cf72023565b9ac5f89f8186420325d74",
        "labels": {"pod-template-generation": "1", "name": "weave-net",
                   "controller-revision-hash": "2689456918"},
        "host": "master1",
        "pod_name": "weave-net-5mfwh",
        "container_name": "weave",
        "pod_id": "f5225d5f-4e9d-11e8-8b6b-02425d6e035a",
        "namespace_name": "kube-system",
    },
    "log": "INFO: 2018/05/03 12:04:57.094154 Discovered remote MAC 36:96:7c:78:d0:22 at 4a:26:23:65:5b:88(worker1)",
    "stream": "stderr",
    "time": "2018-05-03T12:04:57.094408152Z",
}


@pytest.fixture(scope="module")
def pipeline(integration_settings, real_store):
    return build_pipeline(integration_settings, real_store)


def stored_rows(pipeline, namespace, pod, container):
    return stored_columns(pipeline.store, pipeline.settings.cassandra_keyspace, namespace, pod, container)


def test_the_seed_readme_example_round_trips_field_for_field(pipeline):
    record = json.loads(json.dumps(SEED_RECORD))
    record["kubernetes"]["namespace_name"] = namespace = unique("kube-system")
    assert pipeline.post([record]).json["accepted"] == 1
    pipeline.drain()

    response = pipeline.query(namespace, "weave-net-5mfwh", "weave", "2018-05-03T00:00:00Z", "2018-05-04T00:00:00Z")
    assert response.status_code == 200
    assert response.json == {"log_rows": [{"time": "2018-05-03T12:04:57.094408152Z", "log": SEED_RECORD["log"]}]}
    (row,) = stored_rows(pipeline, namespace, "weave-net-5mfwh", "weave")
    k8s = SEED_RECORD["kubernetes"]
    assert row[3:] == (SEED_RECORD["log"], "stderr", k8s["host"], k8s["pod_id"], k8s["docker_id"], k8s["labels"])


def test_a_real_fluent_bit_batch_is_stored_line_for_line(pipeline):
    body = fluent_bit_body("json")
    records = json.loads(body)
    namespace = unique("default")
    for r in records:
        r["kubernetes"]["namespace_name"] = namespace
    assert pipeline.post(records).json == {"accepted": 50, "rejected": 0, "truncated_lines": 0, "errors": []}
    pipeline.drain()

    k8s = records[0]["kubernetes"]
    first, last = records[0]["time"], records[-1]["time"]
    response = pipeline.query(namespace, k8s["pod_name"], k8s["container_name"], first, last)
    assert [r["log"] for r in response.json["log_rows"]] == [r["log"] for r in records]


def test_a_query_across_a_day_border_returns_both_days_in_order(pipeline):
    namespace, pod = unique("ns"), unique("pod")
    times = ["2024-03-09T23:59:59.999999999Z", "2024-03-10T00:00:00Z", "2024-03-09T23:00:00Z", "2024-03-10T01:30:00.5Z"]
    pipeline.post([fluent_bit_record(namespace, pod, "c", time=t, log=f"at {t}") for t in times])
    pipeline.drain()

    response = pipeline.query(namespace, pod, "c", "2024-03-09T22:00:00Z", "2024-03-10T02:00:00Z")
    assert [r["time"] for r in response.json["log_rows"]] == sorted(times)
    inner = pipeline.query(namespace, pod, "c", "2024-03-09T23:30:00Z", "2024-03-10T00:00:00Z")
    assert [r["time"] for r in inner.json["log_rows"]] == ["2024-03-09T23:59:59.999999999Z", "2024-03-10T00:00:00Z"]


def test_lines_sharing_one_millisecond_are_all_kept_in_nanosecond_order(pipeline):
    namespace, pod = unique("ns"), unique("pod")
    base = 1_700_000_000_123_000_000
    records = [fluent_bit_record(namespace, pod, "c", time=base + i * 997, log=f"line {i}") for i in range(1000)]
    pipeline.post(records)
    pipeline.drain()

    response = pipeline.query(namespace, pod, "c", "2023-11-14T22:13:20Z", "2023-11-14T22:13:21Z")
    assert [r["log"] for r in response.json["log_rows"]] == [f"line {i}" for i in range(1000)]


def test_lines_sharing_one_nanosecond_are_all_kept_in_the_order_sent(pipeline):
    namespace, pod = unique("ns"), unique("pod")
    stamp = "2023-11-14T22:13:20.123456789Z"
    records = [fluent_bit_record(namespace, pod, "c", time=stamp, log=f"frame {i}") for i in range(300)]
    records += [fluent_bit_record(namespace, pod, "c", time=stamp, log="frame 0")]  # the same text again: a second line
    pipeline.post(records)
    pipeline.drain()

    response = pipeline.query(namespace, pod, "c", "2023-11-14T22:13:20Z", "2023-11-14T22:13:21Z")
    logs = [r["log"] for r in response.json["log_rows"]]
    assert logs == [f"frame {i}" for i in range(300)] + ["frame 0"]


def test_the_same_batch_posted_twice_leaves_one_row_per_line(pipeline):
    namespace, pod = unique("ns"), unique("pod")
    records = [fluent_bit_record(namespace, pod, "c", time=f"2024-01-01T00:00:0{i % 3}Z", log=f"line {i}")
               for i in range(30)]
    pipeline.post(records)
    pipeline.post(records)
    pipeline.drain()

    assert len(stored_rows(pipeline, namespace, pod, "c")) == 30
    response = pipeline.query(namespace, pod, "c", "2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z")
    assert sorted(r["log"] for r in response.json["log_rows"]) == sorted(f"line {i}" for i in range(30))


def test_a_mixed_batch_stores_exactly_its_valid_records(pipeline):
    namespace, pod = unique("ns"), unique("pod")
    records = [
        fluent_bit_record(namespace, pod, "c", time="2024-01-01T00:00:01Z", log="valid 1"),
        {"kubernetes": {"namespace_name": namespace, "pod_name": pod}, "time": "2024-01-01T00:00:02Z", "log": "no container"},
        fluent_bit_record(namespace, pod, "c", time="not a time", log="bad time"),
        fluent_bit_record(namespace, pod, "c", time="2024-01-01T00:00:03Z", log="valid 2"),
        "not an object",
    ]
    response = pipeline.post(records)
    assert (response.json["accepted"], response.json["rejected"]) == (2, 3)
    pipeline.drain()

    result = pipeline.query(namespace, pod, "c", "2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z")
    assert [r["log"] for r in result.json["log_rows"]] == ["valid 1", "valid 2"]


@pytest.mark.parametrize("mode", ["batch", "concurrent"])
def test_a_partition_four_times_cassandras_batch_limit_is_written_whole(mode, integration_settings):
    settings = with_changes(integration_settings, cassandra_write_mode=mode)
    store = CassandraStore(settings)
    try:
        pipeline = build_pipeline(settings, store)
        namespace, pod = unique("ns"), unique("pod")
        # ~200 KiB in one partition: four times batch_size_fail_threshold (50 KiB).
        records = [fluent_bit_record(namespace, pod, "c", time=1_700_000_000 * 10**9 + i, log="x" * 100 + str(i))
                   for i in range(2000)]
        pipeline.post(records)
        pipeline.drain()
        assert len(stored_rows(pipeline, namespace, pod, "c")) == 2000
    finally:
        store.close()
