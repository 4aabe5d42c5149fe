"""Every fluent-bit body format, posted as captured, stores the same lines (read back via /query)."""

from __future__ import annotations

import gzip
import json
import uuid

import pytest

from common.timestamps import format_rfc3339_ns, parse_rfc3339_ns
from tests.conftest import with_changes
from tests.fixtures import fluent_bit_body, fluent_bit_headers
from tests.integration.pipeline import build_pipeline

pytestmark = pytest.mark.integration

REFERENCE = json.loads(fluent_bit_body("json"))
POD, CONTAINER = "web-7d9f8-abcde", "nginx"
WITH_TIME = ["json", "json_lines", "json_stream", "msgpack", "notime_msgpack", "gzip_json", "iso_nodate"]
DATE_ONLY = ["notime_double", "notime_iso8601", "notime_epoch", "notime_epoch_ms", "notime_java_sql",
             "notime_datekey_ts"]


def capture_in_own_namespace(name: str) -> tuple[str, bytes, dict]:
    """The captured body with namespace 'default' swapped for a fresh 7-character one, so that
    msgpack string lengths and everything else stay as fluent-bit sent them."""
    namespace = "n" + uuid.uuid4().hex[:6]
    headers = fluent_bit_headers(name)
    body = fluent_bit_body(name)
    gzipped = headers.get("Content-Encoding") == "gzip"
    if gzipped:
        body = gzip.decompress(body)
    assert body.count(b"default") == 50, "each record names namespace 'default' once"
    body = body.replace(b"default", namespace.encode())
    if gzipped:
        body = gzip.compress(body)
    sent = {k: v for k, v in headers.items() if k in ("Content-Type", "Content-Encoding")}
    return namespace, body, sent


@pytest.fixture(scope="module")
def pipeline(integration_settings, real_store):
    return build_pipeline(integration_settings, real_store)


def post_and_read_back(pipeline, capture):
    namespace, body, headers = capture_in_own_namespace(capture)
    response = pipeline.client.simulate_post("/write", body=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json["accepted"] == 50
    pipeline.drain()
    result = pipeline.query(namespace, POD, CONTAINER, "2026-03-14T11:59:00Z", "2026-03-14T12:01:00Z")
    return result.json["log_rows"]


@pytest.mark.parametrize("capture", WITH_TIME)
def test_each_format_stores_the_lines_with_their_nanosecond_times(pipeline, capture):
    rows = post_and_read_back(pipeline, capture)
    # /query trims trailing zeros of the fraction (…790Z -> …79Z); fluent-bit's `time` keeps them.
    expected = sorted((format_rfc3339_ns(parse_rfc3339_ns(r["time"])), r["log"]) for r in REFERENCE)
    assert sorted((r["time"], r["log"]) for r in rows) == expected


@pytest.mark.parametrize("capture", DATE_ONLY)
def test_each_date_format_stores_every_line(integration_settings, real_store, capture):
    date_key = "ts" if capture == "notime_datekey_ts" else "date"
    pipeline = build_pipeline(with_changes(integration_settings, fluent_bit_date_key=date_key), real_store)
    rows = post_and_read_back(pipeline, capture)
    assert sorted(r["log"] for r in rows) == sorted(r["log"] for r in REFERENCE)
    assert all(r["time"].startswith("2026-03-14T12:00:0") for r in rows)
