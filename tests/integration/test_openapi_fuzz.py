"""Scenario 6, bad input: schemathesis generates requests from GET /openapi.json, valid ones and
invalid ones (wrong types, missing and empty fields, values out of range), and sends them to the
app wired to the real Redis and Cassandra. No answer may be a 5xx, and every answer must use a
status code, content type and body schema the document declares.

Driven through schemathesis' Python API rather than its pytest plugin, to send 10,000 requests in
well under two minutes on two cores: first its coverage phase (boundary values, wrong types,
missing and empty required fields, unexpected methods, for each parameter), then its fuzzing phase
(hypothesis strategies per operation and mode). Each generated /write body goes out in each form
fluent-bit sends (JSON array, JSON stream, JSON lines, msgpack stream and array, gzip), and each
generated /query in each output type (Accept).
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import json
import time

import cramjam
import msgpack
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core import NotSet

from api.app import create_app
from api.openapi import OPENAPI_PATH
from common.metrics import ApiMetrics
from common.queue import PAYLOAD_KEY_PREFIX, BatchQueue, connect_redis
from common.timestamps import NS_PER_SECOND, format_rfc3339_ns, now_ns
from tests.conftest import with_changes

pytestmark = [
    pytest.mark.integration,
    # raised from inside schemathesis' own strategies, now and then: nothing this test can change
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]

MIN_REQUESTS = 10_000
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# Random RFC 3339 times are nearly never within QUERY_MAX_RANGE_SECONDS of each other, so half of
# the valid /query cases get this window (the rest generated): those reach Cassandra.
RECENT_HOUR = "recent hour"
# The fuzzing phase: (operation, mode, cases drawn). Operations without parameters have one case.
FUZZING = [
    ("POST /write", POSITIVE, 220),  # x6 bodies
    ("POST /write", NEGATIVE, 220),
    ("POST /loki/api/v1/push", POSITIVE, 150),  # x2 bodies when protobuf
    ("POST /loki/api/v1/push", NEGATIVE, 150),
    ("GET /query", POSITIVE, 350),  # x3 Accept
    ("GET /query", RECENT_HOUR, 350),
    ("GET /query", NEGATIVE, 700),
    ("GET /namespaces", POSITIVE, 150),
    ("GET /namespaces", NEGATIVE, 150),
    ("GET /pods", POSITIVE, 150),
    ("GET /pods", NEGATIVE, 150),
    ("GET /containers", POSITIVE, 150),
    ("GET /containers", NEGATIVE, 150),
    ("GET /write", POSITIVE, 1),
    ("GET /ready", POSITIVE, 1),
    ("GET /metrics", POSITIVE, 1),
    ("GET /loki/api/v1/query_range", POSITIVE, 120),
    ("GET /loki/api/v1/query_range", NEGATIVE, 120),
    ("POST /loki/api/v1/query_range", POSITIVE, 40),
    ("GET /loki/api/v1/query", POSITIVE, 60),
    ("GET /loki/api/v1/query", NEGATIVE, 60),
    ("POST /loki/api/v1/query", POSITIVE, 20),
    ("GET /loki/api/v1/labels", POSITIVE, 40),
    ("GET /loki/api/v1/labels", NEGATIVE, 40),
    ("POST /loki/api/v1/labels", POSITIVE, 10),
    ("GET /loki/api/v1/label/{name}/values", POSITIVE, 40),
    ("POST /loki/api/v1/label/{name}/values", POSITIVE, 10),
    ("GET /loki/api/v1/series", POSITIVE, 40),
    ("GET /loki/api/v1/series", NEGATIVE, 40),
    ("POST /loki/api/v1/series", POSITIVE, 10),
    ("GET /loki/api/v1/status/buildinfo", POSITIVE, 1),
    ("GET /loki/api/v1/format_query", POSITIVE, 60),
    ("GET /loki/api/v1/format_query", NEGATIVE, 60),
    ("POST /loki/api/v1/format_query", POSITIVE, 20),
    # A WebSocket: the fuzzer sends no upgrade headers, so every case is refused before any upgrade
    # (400 for a plain GET, as for a bad parameter); the sessions are tests/integration/test_loki_tail.py's.
    ("GET /loki/api/v1/tail", POSITIVE, 60),
    ("GET /loki/api/v1/tail", NEGATIVE, 60),
    ("GET /", POSITIVE, 1),
    ("GET /ui/{file}", POSITIVE, 200),  # any string is a valid file name: no negative cases exist
]
# GET /tail streams until the client leaves: not fuzzed here (tests/unit covers its parameters).
NOT_FUZZED = {"GET /tail"}
QUERY_ACCEPTS = ("application/json", "application/x-ndjson", "text/plain")


# --- request bodies: fluent-bit's forms of one generated batch ---

@schemathesis.serializer("application/x-ndjson")
def _serialize_json_lines(context, value) -> bytes:
    return json_lines(value)


@schemathesis.serializer("application/x-protobuf")
def _serialize_protobuf(context, value) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


@schemathesis.serializer("application/msgpack")
def _serialize_msgpack(context, value) -> bytes:
    return msgpack_stream(value)


def _records(value) -> list:
    return value if isinstance(value, list) else [value]


def json_array(value) -> bytes:
    return json.dumps(value).encode()


def json_stream(value) -> bytes:
    return " ".join(json.dumps(record) for record in _records(value)).encode()


def json_lines(value) -> bytes:
    return b"\n".join(json.dumps(record).encode() for record in _records(value))


def msgpack_stream(value) -> bytes:
    return b"".join(msgpack_array(record) for record in _records(value))


def msgpack_array(value) -> bytes:
    """Strings with lone surrogates go out as such: invalid UTF-8 on the wire."""
    return msgpack.packb(_fits_msgpack(value), unicode_errors="surrogatepass")


def _fits_msgpack(value):
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return float(value)
    if isinstance(value, list):
        return [_fits_msgpack(item) for item in value]
    if isinstance(value, dict):
        return {key: _fits_msgpack(item) for key, item in value.items()}
    return value


WRITE_BODIES = (
    ("application/json", json_array),
    ("application/json", json_stream),
    ("application/x-ndjson", json_lines),
    ("application/msgpack", msgpack_stream),
    ("application/msgpack", msgpack_array),
)


# --- sending and counting ---

@dataclasses.dataclass
class Tally:
    requests: int = 0
    cases: int = 0
    statuses: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # (operation, status)
    seconds: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # phase

    @property
    def server_errors(self) -> int:
        return sum(count for (_, status), count in self.statuses.items() if status >= 500)

    def by_operation(self) -> dict[str, dict[int, int]]:
        table: dict[str, dict[int, int]] = collections.defaultdict(dict)
        for (label, status), count in sorted(self.statuses.items()):
            table[label][status] = count
        return dict(table)


def send(case, tally: Tally, **kwargs) -> None:
    response = case.call(**kwargs)
    tally.requests += 1
    tally.statuses[(case.operation.label, response.status_code)] += 1
    case.validate_response(response, checks=CHECKS, headers=kwargs.get("headers"))


def send_write(case, tally: Tally) -> None:
    """The generated batch in each of fluent-bit's forms (gzipped when the generated
    Content-Encoding says so), then as a gzipped JSON array."""
    if isinstance(case.body, NotSet):
        send(case, tally)
        return
    gzipped = (case.headers or {}).get("Content-Encoding", "").strip().lower() in ("gzip", "x-gzip")
    for media_type, encode in WRITE_BODIES:
        body = case.body if isinstance(case.body, bytes) else encode(case.body)  # raw bytes go as they are
        send(case, tally, data=gzip.compress(body) if gzipped else body, headers={"Content-Type": media_type})
    body = case.body if isinstance(case.body, bytes) else json_array(case.body)
    send(case, tally, data=gzip.compress(body), headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})


def send_push(case, tally: Tally) -> None:
    """A generated Loki push as it is; a generated protobuf body also snappy-compressed, as
    Promtail sends one, so that it reaches the protobuf parser (and gzipped when the generated
    Content-Encoding says so)."""
    send(case, tally)
    media_type = (case.media_type or "").split(";")[0].strip().lower()
    if media_type != "application/x-protobuf" or isinstance(case.body, NotSet):
        return
    body = case.body if isinstance(case.body, bytes) else str(case.body).encode()
    body = bytes(cramjam.snappy.compress_raw(body))
    gzipped = (case.headers or {}).get("Content-Encoding", "").strip().lower() in ("gzip", "x-gzip")
    send(case, tally, data=gzip.compress(body) if gzipped else body, headers={"Content-Type": media_type})


def send_query(case, tally: Tally) -> None:
    for accept in QUERY_ACCEPTS:
        send(case, tally, headers={"Accept": accept})


SENDERS = {"POST /write": send_write, "POST /loki/api/v1/push": send_push, "GET /query": send_query}


def cover(schema, operation, tally: Tally) -> None:
    """Schemathesis' coverage phase: a deterministic set of cases per parameter."""
    sender = SENDERS.get(operation.label, send)
    for case in schema.iter_coverage_cases(operation, generation_modes=[POSITIVE, NEGATIVE],
                                           generation_config=schema.config.generation_for(operation=operation)):
        tally.cases += 1
        sender(case, tally)


def fuzz(operation, mode, cases: int, tally: Tally) -> None:
    """Schemathesis' fuzzing phase: hypothesis draws `cases` cases of the operation."""
    sender = SENDERS.get(operation.label, send)
    if mode == RECENT_HOUR:
        now = now_ns()
        window = {"start_time": format_rfc3339_ns(now - 2 * 3600 * NS_PER_SECOND),
                  "end_time": format_rfc3339_ns(now - 3600 * NS_PER_SECOND)}
        strategy = operation.as_strategy(generation_mode=POSITIVE, query=window)
    else:
        strategy = operation.as_strategy(generation_mode=mode)

    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case):
        tally.cases += 1
        sender(case, tally)

    run()


@pytest.fixture(scope="module")
def fuzzed_app(integration_settings, real_store):
    """The app on the real Redis (a queue of its own, no high-water mark in the way: nothing drains
    it) and the real Cassandra; the queue's keys are deleted afterwards."""
    settings = with_changes(integration_settings, queue_name=f"{integration_settings.queue_name}-fuzz",
                            queue_high_water_mark=10**9)
    redis = connect_redis(settings)
    queue = BatchQueue(redis, settings)
    yield create_app(settings, queue, real_store, ApiMetrics(queue.status))
    queue.rq_queue.delete(delete_jobs=True)
    payloads = list(redis.scan_iter(match=f"{PAYLOAD_KEY_PREFIX}{settings.queue_name}:*", count=1000))
    for first in range(0, len(payloads), 1000):
        redis.delete(*payloads[first:first + 1000])
    assert not list(redis.scan_iter(match=f"*{settings.queue_name}*", count=1000))


def test_ten_thousand_generated_requests_get_no_5xx_and_only_documented_answers(fuzzed_app):
    schema = schemathesis.openapi.from_wsgi(OPENAPI_PATH, fuzzed_app)
    operations = {result.ok().label: result.ok() for result in schema.get_all_operations()}
    fuzzed = {label for label, _, _ in FUZZING}
    assert set(operations) == fuzzed | NOT_FUZZED, "a documented operation that is not fuzzed"
    tally = Tally()
    started = time.monotonic()
    for label in operations.keys() - NOT_FUZZED:
        phase_started = time.monotonic()
        cover(schema, operations[label], tally)
        tally.seconds["coverage"] += time.monotonic() - phase_started
    covered = tally.requests
    for label, mode, cases in FUZZING:
        phase_started = time.monotonic()
        fuzz(operations[label], mode, cases, tally)
        tally.seconds[f"fuzzing {label}"] += time.monotonic() - phase_started
    elapsed = time.monotonic() - started
    print(f"\n[scenario 6] requests={tally.requests} 5xx={tally.server_errors} cases={tally.cases} "
          f"(coverage phase {covered} requests, fuzzing phase {tally.requests - covered}) in {elapsed:.0f} s")
    print(f"[scenario 6] statuses by operation: {tally.by_operation()}")
    print(f"[scenario 6] seconds by phase: { {phase: round(s, 1) for phase, s in tally.seconds.items()} }")
    assert tally.server_errors == 0
    assert tally.requests >= MIN_REQUESTS
