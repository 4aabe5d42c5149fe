"""Redis stopped: ingest answers 503 at once, the probe names Redis, and ingest resumes by itself."""

from __future__ import annotations

import time

import pytest
import redis

from tests.conftest import with_changes
from tests.integration.pipeline import build_pipeline, unique
from tests.records import fluent_bit_record

pytestmark = pytest.mark.integration


@pytest.fixture
def pipeline(integration_settings, real_store, own_redis):
    settings = with_changes(integration_settings, redis_url=own_redis.url, queue_name=unique("outage"))
    return build_pipeline(settings, real_store)


def record(namespace):
    """A batch of one line."""
    return [fluent_bit_record(namespace, "p", "c", time="2024-01-01T00:00:00Z", log="hello", stream=None)]


def test_with_redis_stopped_write_answers_503_within_a_second(pipeline, own_redis):
    own_redis.stop()
    started = time.monotonic()
    response = pipeline.post(record(unique("ns")))
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert elapsed < 1.0, f"503 took {elapsed:.2f}s"


def test_with_redis_stopped_the_health_probe_says_redis_failed(pipeline, own_redis):
    own_redis.stop()
    started = time.monotonic()
    response = pipeline.client.simulate_get("/write")
    assert time.monotonic() - started < 2.5
    assert response.status_code == 503
    assert response.json["healthy"] is False
    assert response.json["detail"].startswith("redis: ")
    assert "cassandra" not in response.json["detail"]


def test_ingest_resumes_by_itself_when_redis_is_back(pipeline, own_redis):
    own_redis.stop()
    assert pipeline.post(record(unique("ns"))).status_code == 503
    own_redis.start()
    namespace = unique("ns")
    assert pipeline.post(record(namespace)).status_code == 200
    pipeline.drain()
    response = pipeline.query(namespace, "p", "c", "2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z")
    assert [r["log"] for r in response.json["log_rows"]] == ["hello"]


def test_a_full_redis_gets_503_whose_detail_names_the_cause_and_quotes_no_data(pipeline, own_redis):
    with redis.Redis.from_url(own_redis.url) as admin:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", admin.info("memory")["used_memory"] + 1)  # full from now on
    secret = "\x01secret-line-\u00e9\u2713\x02"
    response = pipeline.post([{**record(unique("ns"))[0], "log": secret}])
    assert response.status_code == 503
    detail = response.json["detail"]
    assert "maxmemory" in detail and detail.startswith("Redis: OutOfMemoryError")
    assert "kube-insight:payload" not in detail and "SET" not in detail and "secret" not in detail
    assert detail.isprintable()
