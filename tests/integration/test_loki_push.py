"""POST /loki/api/v1/push end to end on the real Redis and Cassandra: every captured push, as its
client sent it, is stored exactly (each line once, nanosecond times, its labels and structured
metadata in the row), a retried push stores nothing twice, and the statuses that make clients
back off (429 at the high-water mark, 503 with Redis down) hold on the real queue."""

from __future__ import annotations

import gzip
import json
import time
import uuid

import cramjam
import pytest

from common.partitions import bucket_of
from common.proto.push_pb2 import PushRequest
from common.store import CassandraStore
from common.timestamps import format_rfc3339_ns, parse_rfc3339_ns
from tests.conftest import with_changes
from tests.fixtures import DATA_DIR, LOKI_PUSH_CAPTURES, loki_push_capture
from tests.integration.pipeline import build_pipeline, unique
from tests.store_reads import stored_columns
from tests.records import loki_json_push, loki_protobuf_push

pytestmark = pytest.mark.integration

PUSH = "/loki/api/v1/push"
CAPTURED = ("default", "web-7d9f8-abcde", "nginx")
POD_ID = "0f5225d5-4e9d-11e8-8b6b-02425d6e035a"
PROMTAIL_FILE = "/var/log/containers/web-7d9f8-abcde_default_nginx-0123.log"
SOURCE = [json.loads(line) for line in (DATA_DIR / "fluent-bit" / "source-container.log").read_text().splitlines()]
# What each capture's rows hold besides line and time: (the row's stream, its labels).
STORED_AS = {
    "fluent-bit/raw": ("source", None),
    "fluent-bit/raw_gzip": ("source", None),
    "fluent-bit/json_line": (None, {"job": "fluent-bit"}),
    "fluent-bit/key_value": (None, None),
    "fluent-bit/structured_tenant": ("source", {"pod_id": POD_ID, "node": "node-1"}),
    "promtail/docker_stage": ("source", {"filename": PROMTAIL_FILE, "job": "kubernetes-pods"}),
}
# The captures whose lines are the source log's own text (the others reformat the record).
RAW_LINES = {"fluent-bit/raw", "fluent-bit/raw_gzip", "fluent-bit/structured_tenant", "promtail/docker_stage"}


@pytest.fixture
def own_settings(integration_settings):
    """A keyspace and queue of this test's own: the captures share one container and the same times."""
    return with_changes(integration_settings, queue_name=unique("loki"),
                        cassandra_keyspace=f"{integration_settings.cassandra_keyspace}_{uuid.uuid4().hex[:6]}")


@pytest.fixture
def own_store(own_settings):
    settings = own_settings
    store = CassandraStore(settings)
    store.connect()
    yield store
    store.connect().execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
    store.close()


def pipeline_for(settings, store, **changes):
    return build_pipeline(with_changes(settings, **changes), store)


def sent_entries(capture: str) -> list[tuple[int, str]]:
    """(ts_ns, line) of every entry in the captured body, read here without the server's decoder."""
    body, headers = loki_push_capture(capture)
    if headers["Content-Type"] == "application/x-protobuf":
        request = PushRequest()
        request.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
        return [(e.timestamp.seconds * 10**9 + e.timestamp.nanos, e.line) for s in request.streams for e in s.entries]
    if headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return [(int(value[0]), value[1]) for stream in json.loads(body)["streams"] for value in stream["values"]]


def queried(pipeline, namespace, pod, container, start_ns, end_ns) -> list[tuple[int, str]]:
    response = pipeline.query(namespace, pod, container, format_rfc3339_ns(start_ns), format_rfc3339_ns(end_ns))
    assert response.status_code == 200, response.text
    return [(parse_rfc3339_ns(row["time"]), row["log"]) for row in response.json["log_rows"]]


def stored_rows(settings, store, namespace, pod, container, ts_ns) -> list[tuple]:
    """(ts_ns, log, stream, labels) of the partition holding ts_ns, straight from Cassandra: the API
    does not serve labels."""
    lines = stored_columns(store, settings.cassandra_keyspace, namespace, pod, container,
                           bucket_of(ts_ns, store.bucket_seconds))
    return [(line.ts_ns, line.log, line.stream, line.labels) for line in lines]


@pytest.mark.parametrize("capture", LOKI_PUSH_CAPTURES)
def test_each_captured_push_as_sent_is_stored_exactly(own_settings, own_store, capture):
    body, headers = loki_push_capture(capture)
    # A capture sent with X-Scope-OrgID goes to a deployment serving that tenant.
    pipeline = pipeline_for(own_settings, own_store, tenant_id=headers.get("X-Scope-OrgID", ""))
    response = pipeline.send(PUSH, body, headers)
    assert response.status_code == 204, response.text
    pipeline.drain()

    sent = sorted(sent_entries(capture))
    assert len(sent) == 50
    if capture in RAW_LINES:
        assert sent == [(parse_rfc3339_ns(r["time"]), r["log"]) for r in SOURCE]
    assert queried(pipeline, *CAPTURED, sent[0][0], sent[-1][0]) == sent
    stream, labels = STORED_AS[capture]
    streams = [r["stream"] for r in SOURCE] if stream == "source" else [None] * 50
    assert stored_rows(own_settings, own_store, *CAPTURED, sent[0][0]) == [
        (ts_ns, line, s, labels) for (ts_ns, line), s in zip(sent, streams)]


def test_a_protobuf_push_of_several_streams_stores_each_under_its_labels(own_settings, own_store):
    pipeline = pipeline_for(own_settings, own_store)
    t0 = 1_773_489_600_123_456_789
    body = loki_protobuf_push(
        ('{namespace="shop", pod="api-1", container="app", stream="stdout", app="api"}',
         [(t0, "GET /orders 200\n"), (t0 + 2, "GET /cart 200\n")]),
        ('{namespace="shop", pod="api-1", container="app", stream="stderr", app="api"}',
         [(t0 + 1, "panic: nil map\n", {"trace_id": "4bf92f35"})]),
        ('{namespace="shop", pod="db-0", container="postgres", stream="stdout"}', [(t0, "checkpoint complete\n")]),
    )
    assert pipeline.send(PUSH, body, {"Content-Type": "application/x-protobuf"}).status_code == 204
    pipeline.drain()
    assert queried(pipeline, "shop", "api-1", "app", t0, t0 + 2) == [
        (t0, "GET /orders 200\n"), (t0 + 1, "panic: nil map\n"), (t0 + 2, "GET /cart 200\n")]
    assert stored_rows(own_settings, own_store, "shop", "api-1", "app", t0) == [
        (t0, "GET /orders 200\n", "stdout", {"app": "api"}),
        (t0 + 1, "panic: nil map\n", "stderr", {"app": "api", "trace_id": "4bf92f35"}),
        (t0 + 2, "GET /cart 200\n", "stdout", {"app": "api"}),
    ]
    assert stored_rows(own_settings, own_store, "shop", "db-0", "postgres", t0) == [(t0, "checkpoint complete\n", "stdout", None)]


@pytest.mark.parametrize("capture", ["fluent-bit/raw", "promtail/docker_stage"])
def test_a_push_sent_again_leaves_one_row_per_line(own_settings, own_store, capture):
    pipeline = pipeline_for(own_settings, own_store)
    body, headers = loki_push_capture(capture)
    assert pipeline.send(PUSH, body, headers).status_code == 204
    pipeline.drain()
    assert pipeline.send(PUSH, body, headers).status_code == 204  # after the first is stored
    assert pipeline.send(PUSH, body, headers).status_code == 204  # and while the second is queued
    pipeline.drain()
    sent = sorted(sent_entries(capture))
    assert queried(pipeline, *CAPTURED, sent[0][0], sent[-1][0]) == sent


def test_a_partially_rejected_push_stores_its_valid_entries(own_settings, own_store):
    pipeline = pipeline_for(own_settings, own_store)
    t0 = 1_773_489_600 * 10**9
    body = loki_json_push(({"namespace": "shop", "pod": "api-1", "container": "app"}, [(t0, "kept")]),
                          ({"namespace": "shop", "pod": "api-1"}, [(t0 + 1, "no container label")]))
    response = pipeline.send(PUSH, body, {"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json["detail"].endswith("total ignored: 1 out of 2")
    pipeline.drain()
    assert queried(pipeline, "shop", "api-1", "app", t0, t0 + 1) == [(t0, "kept")]


def test_at_the_high_water_mark_a_push_gets_429_and_nothing_of_it_is_stored(own_settings, own_store):
    pipeline = pipeline_for(own_settings, own_store, queue_high_water_mark=1, retry_after_seconds=4)
    t0 = 1_773_489_600 * 10**9
    labels = {"namespace": "shop", "pod": "api-1", "container": "app"}
    headers = {"Content-Type": "application/json"}
    assert pipeline.send(PUSH, loki_json_push((labels, [(t0, "first")])), headers).status_code == 204
    response = pipeline.send(PUSH, loki_json_push((labels, [(t0 + 1, "refused")])), headers)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "4"
    pipeline.drain()
    assert queried(pipeline, "shop", "api-1", "app", t0, t0 + 1) == [(t0, "first")]


def test_with_redis_stopped_a_push_gets_503_at_once_and_goes_through_when_it_is_back(
        own_settings, own_store, own_redis):
    pipeline = pipeline_for(own_settings, own_store, redis_url=own_redis.url, retry_after_seconds=3)
    body, headers = loki_push_capture("promtail/docker_stage")
    own_redis.stop()
    started = time.monotonic()
    response = pipeline.send(PUSH, body, headers)
    assert time.monotonic() - started < 1.0
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert response.json["message"] == "Redis unavailable"
    own_redis.start()
    assert pipeline.send(PUSH, body, headers).status_code == 204
    pipeline.drain()
    sent = sorted(sent_entries("promtail/docker_stage"))
    assert queried(pipeline, *CAPTURED, sent[0][0], sent[-1][0]) == sent
