"""GET /write (health probe), GET /metrics, and the error shape of unknown paths."""

from __future__ import annotations

import datetime

import pytest
import rq.utils
from prometheus_client.parser import text_string_to_metric_families

from api.observability import KNOWN_METHODS
from tests.records import kubernetes
from tests.unit.api_harness import FakeStore, build


def test_health_is_200_when_redis_and_cassandra_answer():
    response = build().client.simulate_get("/write")
    assert response.status_code == 200
    assert response.json == {"healthy": True, "detail": ""}


def test_health_is_503_naming_cassandra_when_it_is_down():
    response = build(store=FakeStore(down="no host available")).client.simulate_get("/write")
    assert response.status_code == 503
    assert response.json["healthy"] is False
    assert response.json["detail"].startswith("cassandra: ")


def test_health_is_503_naming_redis_when_it_is_down():
    harness = build()
    harness.redis_server.connected = False
    response = harness.client.simulate_get("/write")
    assert response.status_code == 503
    assert response.json["detail"].startswith("redis: ")


def metrics(harness) -> dict[str, float]:
    text = harness.client.simulate_get("/metrics").text
    return {
        sample.name + str(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_by_method_route_and_status():
    harness = build()
    harness.client.simulate_get("/write")
    harness.client.simulate_get("/query")
    values = metrics(harness)
    assert values["logserver_http_requests_total[('method', 'GET'), ('path', '/write'), ('status', '200')]"] == 1
    assert values["logserver_http_requests_total[('method', 'GET'), ('path', '/query'), ('status', '400')]"] == 1


def test_metrics_report_records_and_queue_depth_read_from_redis():
    harness = build()
    harness.client.simulate_post("/write", json=[
        {"kubernetes": kubernetes("n", "p", "c"), "date": 1.0},
        {"kubernetes": {"namespace_name": "n"}, "date": 1.0},
    ])
    values = metrics(harness)
    assert values["logserver_records_accepted_total[]"] == 1
    assert values["logserver_records_rejected_total[]"] == 1
    assert values["logserver_queue_depth[]"] == 1
    assert values["logserver_queue_failed_jobs[]"] == 0
    assert values["logserver_redis_up[]"] == 1


def test_metrics_still_answer_when_redis_is_down():
    harness = build()
    harness.redis_server.connected = False
    assert metrics(harness)["logserver_redis_up[]"] == 0


def test_an_unknown_path_gets_404_in_the_error_shape():
    response = build().client.simulate_get("/nope")
    assert response.status_code == 404
    assert set(response.json) == {"message", "detail"}


def test_ready_needs_only_redis_so_ingest_survives_a_cassandra_outage():
    response = build(store=FakeStore(down="no host available")).client.simulate_get("/ready")
    assert response.status_code == 200
    assert response.json == {"ready": True, "detail": ""}


def test_not_ready_when_redis_is_down():
    harness = build()
    harness.redis_server.connected = False
    response = harness.client.simulate_get("/ready")
    assert response.status_code == 503
    assert response.json["detail"].startswith("redis: ")


@pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning")
def test_made_up_methods_are_counted_as_other_and_never_grow_the_metrics():
    harness = build()

    def send_made_up_methods(first: int) -> int:
        for n in range(first, first + 150):
            harness.client.simulate_request(f"X{n:04d}METHOD", "/write")
            harness.client.simulate_request(f"Y{n:04d}METHOD", f"/made-up/{n}")
        return len(harness.client.simulate_get("/metrics").text)

    harness.client.simulate_get("/metrics")  # its own series exists before the first measure
    size_after_first_round = send_made_up_methods(0)
    size_after_second_round = send_made_up_methods(150)
    values = metrics(harness)
    assert values["logserver_http_requests_total[('method', 'other'), ('path', '/write'), ('status', '400')]"] == 300
    assert values["logserver_http_requests_total[('method', 'other'), ('path', 'unmatched'), ('status', '404')]"] == 300
    assert not any("METHOD" in key for key in values)
    assert size_after_second_round - size_after_first_round < 100  # counts grew, no series was added


@pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning")
def test_every_label_value_of_the_request_metrics_comes_from_a_fixed_set():
    harness = build()
    for method in ("GET", "HEAD", "OPTIONS", "PATCH", "get", "BREW"):
        harness.client.simulate_request(method, "/write")
    for key in metrics(harness):
        if key.startswith("logserver_http_request"):
            labels = dict(eval(key[key.index("["):]))  # the test's own str(sorted(items))
            assert labels.get("method", "GET") in KNOWN_METHODS + ("other",)
            assert labels.get("path", "/write") in ("/write", "unmatched")


def test_metrics_report_how_long_the_oldest_queued_batch_has_waited():
    harness = build()
    harness.client.simulate_post("/write", json=[{"kubernetes": kubernetes("n", "p", "c"), "date": 1.0}])
    harness.client.simulate_post("/write", json=[{"kubernetes": kubernetes("n", "p", "c"), "date": 2.0}])
    head = harness.queue.rq_queue.get_job_ids(0, 1)[0]
    ninety_seconds_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=90)
    harness.redis.hset(f"rq:job:{head}", "enqueued_at", rq.utils.utcformat(ninety_seconds_ago))
    assert 90 <= metrics(harness)["logserver_queue_oldest_batch_age_seconds[]"] < 95


def test_the_oldest_wait_is_zero_when_no_batch_waits():
    assert metrics(build())["logserver_queue_oldest_batch_age_seconds[]"] == 0
