"""The reads' share of the API threads (api/read_slots.py), through the app's factory: at most half
of API_THREADS serve reads at once, one more gets 429, and ingest, /ready and /metrics never wait."""

from __future__ import annotations

import urllib.parse

import falcon.testing
import pytest

from api.read_slots import SlotBody

from common.settings import Settings
from common.timestamps import NS_PER_SECOND, format_rfc3339_ns, now_ns
from tests.records import fluent_bit_record
from tests.unit.api_harness import SEED_CONTAINER, FakeStore, build

T0 = now_ns() - 3600 * NS_PER_SECOND
NAMESPACE, POD, CONTAINER = SEED_CONTAINER
QUERY = {"namespace": NAMESPACE, "pod_name": POD, "container_name": CONTAINER, "start_time": format_rfc3339_ns(T0)}
SETTINGS = Settings(api_threads=4, retry_after_seconds=7)  # 2 read slots


def harness(settings=SETTINGS):
    return build(settings, FakeStore(rows=[(T0 + i, f"line {i}") for i in range(10)]))


def open_stream(app, path="/query", params=QUERY, accept="application/x-ndjson"):
    """Start a streamed read as waitress does and leave its body open: (status, body)."""
    answer = {}
    environ = falcon.testing.create_environ(path=path, query_string=urllib.parse.urlencode(params),
                                            headers={"Accept": accept})
    body = app(environ, lambda status, headers, exc_info=None: answer.setdefault("status", status))
    return answer["status"], body


def test_a_read_beyond_half_the_api_threads_gets_429_with_retry_after_and_the_setting_named():
    h = harness()
    held = [open_stream(h.client.app) for _ in range(2)]
    assert [status[:3] for status, _ in held] == ["200", "200"]
    refused = h.client.simulate_get("/query", params=QUERY)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "7"
    assert set(refused.json) == {"message", "detail"} and "API_THREADS=4" in refused.json["detail"]


def test_every_read_endpoint_shares_the_same_slots():
    h = harness()
    for _ in range(2):
        open_stream(h.client.app, "/tail", {"namespace": NAMESPACE, "pod_name": POD})
    statuses = [h.client.simulate_get(path, params=params).status_code for path, params in (
        ("/query", QUERY), ("/query", {**QUERY, "limit": "1"}), ("/namespaces", {}),
        ("/pods", {"namespace": NAMESPACE}), ("/containers", {"namespace": NAMESPACE, "pod_name": POD}))]
    assert statuses == [429] * 5


def test_ingest_the_probes_and_metrics_answer_while_reads_hold_their_share():
    h = harness()
    for _ in range(2):
        open_stream(h.client.app)
    record = fluent_bit_record(NAMESPACE, POD, CONTAINER, time=T0, log="hello", stream=None)
    assert h.client.simulate_post("/write", json=[record]).status_code == 200
    assert [h.client.simulate_get(path).status_code for path in ("/write", "/ready", "/metrics")] == [200] * 3


def test_a_streamed_read_gives_its_slot_back_when_its_body_is_closed():
    h = harness(Settings(api_threads=2))
    _, body = open_stream(h.client.app)
    assert h.client.simulate_get("/query", params=QUERY).status_code == 429
    body.close()
    assert h.client.simulate_get("/query", params=QUERY).status_code == 200


def test_a_json_answer_and_a_failed_read_give_their_slot_back_at_once():
    h = harness(Settings(api_threads=2))
    assert h.client.simulate_get("/query", params={**QUERY, "limit": "x"}).status_code == 400
    assert h.client.simulate_get("/query", params=QUERY).status_code == 200
    h.store.down = "no Cassandra"
    assert h.client.simulate_get("/query", params=QUERY).status_code == 503
    h.store.down = None
    assert h.client.simulate_get("/namespaces").status_code == 200
    assert h.client.simulate_get("/query", params=QUERY).status_code == 200


def test_a_json_document_keeps_its_slot_until_waitress_has_written_it():
    h = harness(Settings(api_threads=2))
    status, body = open_stream(h.client.app, accept="application/json")
    assert status.startswith("200")
    assert h.client.simulate_get("/query", params=QUERY).status_code == 429
    assert b"".join(body).startswith(b'{"log_rows":')
    body.close()
    assert h.client.simulate_get("/query", params=QUERY).status_code == 200


def test_a_body_read_to_its_end_gives_its_slot_back_though_never_closed():
    # werkzeug's test client (schemathesis' WSGI transport) reads a body to its end and never calls
    # close(), which PEP 3333 asks for: such a read held its slot for good, and the fuzzer met 429s.
    h = harness()
    for path, params in (("/query", QUERY), ("/namespaces", {}), ("/loki/api/v1/labels", {})):
        for _ in range(3):  # more than the 2 slots
            status, body = open_stream(h.client.app, path, params)
            assert status[:3] == "200"
            b"".join(body)
    assert h.client.simulate_get("/query", params=QUERY).status_code == 200


def test_a_body_whose_stream_fails_gives_its_slot_back_once_and_closes_its_source():
    released, closed = [], []

    def chunks():
        try:
            yield b"first"
            raise RuntimeError("the store went away")
        finally:
            closed.append(True)

    body = SlotBody(chunks(), lambda: released.append(True))
    assert next(body) == b"first"
    with pytest.raises(RuntimeError):
        next(body)
    body.close()  # waitress closes it too
    assert released == [True] and closed == [True]


@pytest.mark.parametrize("path, params, method, accept", [
    ("/namespaces", {}, "namespaces_in_buckets", "application/json"),
    ("/query", QUERY, "read_range", "application/x-ndjson"),
    ("/loki/api/v1/series", {"match[]": '{namespace="x"}'}, "series_in_buckets", "application/json"),
])
def test_a_read_that_fails_with_a_bug_gives_its_slot_back(monkeypatch, path, params, method, accept):
    h = harness(Settings(api_threads=2))  # one slot

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(h.store, method, broken)
    for _ in range(2):
        status, body = open_stream(h.client.app, path, params, accept)
        try:
            b"".join(body)
        except RuntimeError:
            pass  # a stream failing mid-body: waitress drops the connection
        body.close()
    monkeypatch.undo()
    assert h.client.simulate_get("/query", params=QUERY).status_code == 200
