"""POST /loki/api/v1/push: what fluent-bit's `loki` output, Promtail and Alloy get back, and what
lands in the queue. Promtail and Alloy retry 429 and 5xx only; fluent-bit drops on 400 only."""

from __future__ import annotations

import base64
import gzip
import json

import cramjam
import pytest

from common.queue import decode_payload
from common.settings import Settings
from tests.fixtures import LOKI_PUSH_CAPTURES, loki_push_capture
from tests.records import fluent_bit_record, loki_json_push, loki_protobuf_push
from tests.unit.api_harness import build

PUSH = "/loki/api/v1/push"
JSON = {"Content-Type": "application/json"}
PROTOBUF = {"Content-Type": "application/x-protobuf"}
NGINX = {"namespace": "default", "pod": "web-1", "container": "nginx"}
NGINX_SELECTOR = '{namespace="default", pod="web-1", container="nginx"}'
T0 = 1_773_489_600_000_000_000


def push(harness, body: bytes, headers=JSON, **more):
    return harness.client.simulate_post(PUSH, body=body, headers={**headers, **more})


def queued_rows(harness):
    rows = []
    for job in harness.queue.rq_queue.get_jobs():
        rows += decode_payload(harness.redis.get(job.args[0])).rows
    return rows


def metric(harness, name: str) -> float:
    text = harness.client.simulate_get("/metrics").text
    return next(float(line.split()[1]) for line in text.splitlines() if line.startswith(name + " "))


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# --- 204: everything queued ---


@pytest.mark.parametrize("capture", LOKI_PUSH_CAPTURES)
def test_each_captured_push_as_sent_gets_204_and_queues_its_50_lines(capture):
    harness = build()
    body, headers = loki_push_capture(capture)
    response = push(harness, body, headers)
    assert response.status_code == 204, response.text
    assert response.text == ""
    rows = queued_rows(harness)
    assert len(rows) == 50
    assert {(r.namespace, r.pod_name, r.container_name) for r in rows} == {("default", "web-7d9f8-abcde", "nginx")}


def test_a_json_push_maps_labels_and_keeps_structured_metadata():
    harness = build()
    labels = {**NGINX, "stream": "stderr", "job": "fluent-bit"}
    response = push(harness, loki_json_push((labels, [(T0, "one\n"), (T0 + 1, "two\n", {"node": "node-1"})])))
    assert response.status_code == 204
    rows = queued_rows(harness)
    assert [(r.ts_ns, r.log, r.stream) for r in rows] == [(T0, "one\n", "stderr"), (T0 + 1, "two\n", "stderr")]
    assert [r.labels for r in rows] == [{"job": "fluent-bit"}, {"job": "fluent-bit", "node": "node-1"}]


def test_a_protobuf_push_of_several_streams_becomes_one_job():
    harness = build()
    body = loki_protobuf_push(
        ('{namespace="default", pod="web-1", container="nginx", stream="stdout"}', [(T0, "a"), (T0 + 2, "c")]),
        ('{namespace="default", pod="web-2", container="nginx", stream="stderr"}', [(T0 + 1, "b", {"trace_id": "x"})]),
    )
    assert push(harness, body, PROTOBUF).status_code == 204
    assert harness.queue.rq_queue.count == 1
    rows = queued_rows(harness)
    assert [(r.pod_name, r.ts_ns, r.log, r.stream, r.labels) for r in rows] == [
        ("web-1", T0, "a", "stdout", None), ("web-1", T0 + 2, "c", "stdout", None),
        ("web-2", T0 + 1, "b", "stderr", {"trace_id": "x"})]


def test_a_push_without_content_type_is_read_as_protobuf_as_loki_does():
    harness = build()
    response = harness.client.simulate_post(PUSH, body=loki_protobuf_push((NGINX_SELECTOR, [(T0, "a")])))
    assert response.status_code == 204
    assert [r.log for r in queued_rows(harness)] == ["a"]


def test_an_empty_push_gets_204_and_queues_no_job():
    harness = build()
    assert push(harness, b'{"streams": []}').status_code == 204
    assert harness.queue.rq_queue.count == 0


def test_a_gzip_push_is_inflated_and_queued():
    harness = build()
    body = gzip.compress(loki_json_push((NGINX, [(T0, "zipped")])))
    assert push(harness, body, JSON, **{"Content-Encoding": "gzip"}).status_code == 204
    assert [r.log for r in queued_rows(harness)] == ["zipped"]


def test_a_gzip_protobuf_push_is_inflated_then_unsnappied():
    harness = build()
    body = gzip.compress(loki_protobuf_push((NGINX_SELECTOR, [(T0, "both")])))
    assert push(harness, body, PROTOBUF, **{"Content-Encoding": "gzip"}).status_code == 204
    assert [r.log for r in queued_rows(harness)] == ["both"]


def test_an_overlong_line_is_truncated_queued_and_counted():
    harness = build(Settings(max_line_bytes=100))
    assert push(harness, loki_json_push((NGINX, [(T0, "é" * 500)]))).status_code == 204
    assert len(queued_rows(harness)[0].log.encode()) <= 100
    assert metric(harness, "logserver_lines_truncated_total") == 1


# --- 400: rejected entries (the others are queued) ---


def test_a_partial_rejection_queues_the_valid_entries_and_answers_400_with_lokis_message():
    harness = build()
    body = loki_json_push(
        (NGINX, [(T0, "kept 1")]),
        ({"namespace": "default", "pod": "web-1"}, [(T0 + 1, "no container")]),
        (NGINX, [(T0 + 2, "kept 2")]),
    )
    response = push(harness, body)
    assert response.status_code == 400
    assert set(response.json) == {"message", "detail"}
    assert response.json["message"] == "1 of 3 entries rejected; the other 2 are queued"
    detail = response.json["detail"]
    assert detail.endswith("total ignored: 1 out of 3")
    assert "has no `container` label" in detail
    assert [r.log for r in queued_rows(harness)] == ["kept 1", "kept 2"]


def test_an_entry_with_a_bad_timestamp_is_rejected_alone_in_lokis_words():
    harness = build()
    body = (b'{"streams": [{"stream": {"namespace": "default", "pod": "web-1", "container": "nginx"}, '
            b'"values": [["%d", "kept"], ["yesterday", "lost"]]}]}' % T0)
    response = push(harness, body)
    assert response.status_code == 400
    assert "entry with timestamp 'yesterday' ignored, reason: " in response.json["detail"]
    assert "total ignored: 1 out of 2" in response.json["detail"]
    assert [r.log for r in queued_rows(harness)] == ["kept"]


def test_a_push_of_only_rejected_entries_gets_400_and_queues_nothing():
    harness = build()
    response = push(harness, loki_json_push(({"pod": "web-1"}, [(T0, "a"), (T0 + 1, "b")])))
    assert response.status_code == 400
    assert response.json["message"] == "all 2 entries rejected"
    assert response.json["detail"].endswith("total ignored: 2 out of 2")
    assert harness.queue.rq_queue.count == 0


def test_accepted_and_rejected_entries_are_counted_in_the_metrics():
    harness = build()
    push(harness, loki_json_push((NGINX, [(T0, "a"), (T0 + 1, "b")]), ({"pod": "p"}, [(T0, "c")])))
    assert metric(harness, "logserver_records_accepted_total") == 2
    assert metric(harness, "logserver_records_rejected_total") == 1


@pytest.mark.parametrize("body, headers, expected", [
    (b"not json", JSON, "Loki push request"),
    (b"\x10 is no snappy block", PROTOBUF, "snappy"),
    (bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff")), PROTOBUF, "logproto.PushRequest"),
])
def test_a_body_that_is_no_push_request_gets_400(body, headers, expected):
    response = push(build(), body, headers)
    assert response.status_code == 400
    assert response.json["message"] == "Invalid body"
    assert expected in response.json["detail"]


def test_a_corrupt_gzip_body_gets_400():
    response = push(build(), b"\x1f\x8b not really gzip", JSON, **{"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "gzip" in response.json["detail"]


# --- 413, 415 ---


def test_an_unsupported_content_type_gets_415():
    response = push(build(), b"namespace=default line=hello", {"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert "application/x-protobuf" in response.json["detail"]


def test_a_declared_body_above_the_limit_gets_413_without_being_read():
    harness = build(Settings(max_body_bytes=2048))
    response = push(harness, loki_json_push((NGINX, [(T0, "x" * 4096)])))
    assert response.status_code == 413
    assert "MAX_BODY_BYTES" in response.json["detail"] and PUSH in response.json["detail"]


def test_a_gzip_bomb_is_stopped_at_the_inflated_limit():
    harness = build(Settings(max_body_bytes=64 * 1024))
    bomb = gzip.compress(b'{"streams": [' + b" " * (50 * 1024 * 1024) + b"]}")
    assert len(bomb) < 64 * 1024
    response = push(harness, bomb, JSON, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "inflates past" in response.json["detail"]


def test_a_snappy_bomb_is_refused_by_its_declared_length():
    harness = build(Settings(max_body_bytes=64 * 1024))
    bomb = bytes(cramjam.snappy.compress_raw(b"\0" * (1024 * 1024)))
    assert len(bomb) < 64 * 1024
    response = push(harness, bomb, PROTOBUF)
    assert response.status_code == 413
    assert "declares" in response.json["detail"]


# --- 429 and 503: retried by every client ---


def test_the_high_water_mark_gets_429_with_retry_after():
    harness = build(Settings(queue_high_water_mark=1, retry_after_seconds=7))
    assert push(harness, loki_json_push((NGINX, [(T0, "a")]))).status_code == 204
    response = push(harness, loki_json_push((NGINX, [(T0 + 1, "b")])))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert set(response.json) == {"message", "detail"}
    assert harness.queue.rq_queue.count == 1
    assert metric(harness, "logserver_records_accepted_total") == 1


def test_the_native_api_still_answers_503_at_the_high_water_mark():
    harness = build(Settings(queue_high_water_mark=1))
    push(harness, loki_json_push((NGINX, [(T0, "a")])))
    response = harness.client.simulate_post("/write", body=json.dumps([fluent_bit_record()]), headers=JSON)
    assert response.status_code == 503


def test_redis_unavailable_gets_503_with_retry_after_and_nothing_counted():
    harness = build(Settings(retry_after_seconds=3))
    harness.redis_server.connected = False
    response = push(harness, loki_json_push((NGINX, [(T0, "a")])))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert "Redis" in response.json["message"]
    assert metric(harness, "logserver_records_accepted_total") == 0


# --- tokens ---


def test_with_an_ingest_token_a_push_without_it_gets_401():
    harness = build(Settings(ingest_token="in-secret"))
    response = push(harness, loki_json_push((NGINX, [(T0, "a")])))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert harness.queue.rq_queue.count == 0


def test_the_ingest_token_as_bearer_token_is_accepted():
    harness = build(Settings(ingest_token="in-secret"))
    response = push(harness, loki_json_push((NGINX, [(T0, "a")])), JSON, Authorization="Bearer in-secret")
    assert response.status_code == 204


def test_the_ingest_token_as_basic_auth_password_is_accepted_whatever_the_user():
    harness = build(Settings(ingest_token="in-secret"))
    response = push(harness, loki_json_push((NGINX, [(T0, "a")])), {**JSON, **basic("promtail", "in-secret")})
    assert response.status_code == 204


def test_basic_auth_with_another_password_gets_401():
    harness = build(Settings(ingest_token="in-secret"))
    response = push(harness, loki_json_push((NGINX, [(T0, "a")])), {**JSON, **basic("in-secret", "wrong")})
    assert response.status_code == 401


def test_the_query_token_does_not_push():
    harness = build(Settings(ingest_token="in-secret", query_token="out-secret"))
    response = push(harness, loki_json_push((NGINX, [(T0, "a")])), JSON, Authorization="Bearer out-secret")
    assert response.status_code == 401


# --- tenant ---


def test_the_configured_tenant_pushes():
    harness = build(Settings(tenant_id="team-a"))
    body, headers = loki_push_capture("fluent-bit/structured_tenant")
    assert headers["X-Scope-OrgID"] == "team-a"
    assert push(harness, body, headers).status_code == 204
    assert len(queued_rows(harness)) == 50


def test_another_tenant_gets_403_and_queues_nothing():
    harness = build(Settings(tenant_id="team-b"))
    body, headers = loki_push_capture("fluent-bit/structured_tenant")
    response = push(harness, body, headers)
    assert response.status_code == 403
    assert harness.queue.rq_queue.count == 0


def test_a_push_without_org_id_gets_401_when_a_tenant_is_set():
    harness = build(Settings(tenant_id="team-a"))
    response = push(harness, loki_json_push((NGINX, [(T0, "a")])))
    assert response.status_code == 401
    assert "X-Scope-OrgID" in response.json["detail"]


def test_without_a_tenant_setting_any_org_id_pushes():
    harness = build()
    response = push(harness, loki_json_push((NGINX, [(T0, "a")])), JSON, **{"X-Scope-OrgID": "anyone"})
    assert response.status_code == 204
