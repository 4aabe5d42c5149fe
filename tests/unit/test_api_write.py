"""POST /write: what fluent-bit gets back for each kind of body, and what lands in the queue."""

from __future__ import annotations

import functools
import gzip
import json

import pytest

from common.queue import decode_payload
from common.settings import Settings
from tests.records import fluent_bit_record
from tests.unit.api_harness import build


# A weave-net line as fluent-bit sends it (with its `date` key); keyword arguments replace fields.
record = functools.partial(
    fluent_bit_record, "kube-system", "weave-net-5mfwh", "weave", metadata={"host": "master1"},
    time="2018-05-03T12:04:57.094408152Z", log="hello\n", stream="stderr", date=1525349097.094408)


def post(harness, body, **headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return harness.client.simulate_post("/write", body=data, headers={"Content-Type": "application/json", **headers})


def queued_rows(harness):
    rows = []
    for job in harness.queue.rq_queue.get_jobs():
        rows += decode_payload(harness.redis.get(job.args[0])).rows
    return rows


def test_a_valid_batch_is_queued_and_acknowledged_with_a_summary():
    harness = build()
    response = post(harness, [record(), record(log="second\n")])
    assert response.status_code == 200
    assert response.json == {"accepted": 2, "rejected": 0, "truncated_lines": 0, "errors": []}
    rows = queued_rows(harness)
    assert [r.log for r in rows] == ["hello\n", "second\n"]
    assert rows[0].ts_ns == 1525349097094408152
    assert (rows[0].namespace, rows[0].pod_name, rows[0].container_name) == ("kube-system", "weave-net-5mfwh", "weave")


def test_a_batch_becomes_exactly_one_job():
    harness = build()
    post(harness, [record() for _ in range(100)])
    assert harness.queue.rq_queue.count == 1


def test_invalid_records_are_reported_and_their_valid_neighbours_kept():
    harness = build()
    bad = record()
    del bad["kubernetes"]["pod_name"]
    response = post(harness, [record(log="kept 1"), bad, record(log="kept 2"), record(time="yesterday")])
    assert response.status_code == 200
    assert response.json["accepted"] == 2 and response.json["rejected"] == 2
    assert [e["index"] for e in response.json["errors"]] == [1, 3]
    assert "pod_name" in response.json["errors"][0]["reason"]
    assert "RFC 3339" in response.json["errors"][1]["reason"]
    assert [r.log for r in queued_rows(harness)] == ["kept 1", "kept 2"]


@pytest.mark.parametrize("body, expected", [
    (b"not json", "not valid JSON"),
    (b'42', "JSON array"),
])
def test_a_body_that_can_never_succeed_gets_400_with_message_and_detail(body, expected):
    response = post(build(), body)
    assert response.status_code == 400
    assert set(response.json) == {"message", "detail"}
    assert expected in response.json["detail"]


def test_a_batch_of_only_invalid_records_gets_400_naming_each_reason():
    response = post(build(), [record(kubernetes={"namespace_name": "", "pod_name": "p", "container_name": "c"})])
    assert response.status_code == 400
    assert "namespace_name" in response.json["detail"]


def test_an_empty_array_is_accepted_and_queues_nothing():
    harness = build()
    response = post(harness, [])
    assert response.status_code == 200 and response.json["accepted"] == 0
    assert harness.queue.rq_queue.count == 0


def test_a_record_with_only_date_is_stamped_from_it():
    harness = build()
    value = record()
    del value["time"]
    post(harness, [value])
    assert queued_rows(harness)[0].ts_ns == 1525349097094408000


def test_a_declared_body_above_the_limit_gets_413_without_being_read():
    harness = build(Settings(max_body_bytes=2048))
    response = post(harness, json.dumps([record(log="x" * 4096)]).encode())
    assert response.status_code == 413
    assert "MAX_BODY_BYTES" in response.json["detail"]


def test_a_queue_above_its_high_water_mark_gets_503_with_retry_after():
    harness = build(Settings(queue_high_water_mark=1, retry_after_seconds=7))
    assert post(harness, [record()]).status_code == 200
    response = post(harness, [record()])
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert harness.queue.rq_queue.count == 1


def test_redis_unavailable_gets_503_and_nothing_is_acknowledged():
    harness = build(Settings(retry_after_seconds=3))
    harness.redis_server.connected = False
    response = post(harness, [record()])
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert "Redis" in response.json["message"]


def test_an_overlong_line_is_truncated_and_counted():
    harness = build(Settings(max_line_bytes=100))
    response = post(harness, [record(log="é" * 500)])
    assert response.json["truncated_lines"] == 1
    assert len(queued_rows(harness)[0].log.encode()) <= 100


def test_a_gzip_body_is_inflated_and_queued():
    harness = build()
    body = gzip.compress(json.dumps([record()]).encode())
    response = post(harness, body, **{"Content-Encoding": "gzip"})
    assert response.status_code == 200 and response.json["accepted"] == 1


def test_a_gzip_bomb_is_stopped_at_the_inflated_limit():
    harness = build(Settings(max_body_bytes=64 * 1024))
    bomb = gzip.compress(b"[" + b" " * (50 * 1024 * 1024) + b"]")  # 50 MiB of JSON in ~50 KiB
    assert len(bomb) < 64 * 1024
    response = post(harness, bomb, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "inflates past" in response.json["detail"]


def test_a_corrupt_gzip_body_gets_400():
    response = post(build(), b"\x1f\x8b not really gzip", **{"Content-Encoding": "gzip"})
    assert response.status_code == 400


def test_every_member_of_a_multi_member_gzip_body_is_inflated():
    harness = build()
    members = [gzip.compress(json.dumps(record(log=f"member {n}")).encode() + b"\n") for n in range(2)]
    response = post(harness, b"".join(members), **{"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"})
    assert response.status_code == 200 and response.json["accepted"] == 2
    assert [row.log for row in queued_rows(harness)] == ["member 0", "member 1"]


def test_the_inflated_limit_holds_for_all_members_together():
    harness = build(Settings(max_body_bytes=64 * 1024))
    member = gzip.compress(b" " * (40 * 1024))  # each member alone is under the limit
    response = post(harness, member * 2, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "inflates past" in response.json["detail"]


def test_garbage_after_the_last_gzip_member_gets_400():
    body = gzip.compress(json.dumps([record()]).encode()) + b"not gzip at all"
    response = post(build(), body, **{"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "not valid gzip" in response.json["detail"]


def test_a_declared_ndjson_line_that_is_not_json_costs_only_itself():
    lines = [json.dumps(record(log="first")), '{"kubernetes": broken', json.dumps(record(log="third"))]
    harness = build()
    response = post(harness, "\n".join(lines).encode(), **{"Content-Type": "application/x-ndjson"})
    assert response.status_code == 200
    assert (response.json["accepted"], response.json["rejected"]) == (2, 1)
    assert response.json["errors"][0]["index"] == 1
    assert "not valid JSON" in response.json["errors"][0]["reason"]
    assert [row.log for row in queued_rows(harness)] == ["first", "third"]
