"""GET /query's paging, filters, scopes and outputs, and discovery, on the real pipeline: lines go
in through POST /write, a worker writes them (and the index) to the real Cassandra, and they are
read back through the API."""

from __future__ import annotations

import json
import time

import pytest

from common.timestamps import NS_PER_SECOND, format_rfc3339_ns
from tests.integration.pipeline import build_pipeline, unique
from tests.records import fluent_bit_record

pytestmark = pytest.mark.integration

BORDER = 1_710_000_000 * NS_PER_SECOND - (1_710_000_000 % 3600) * NS_PER_SECOND  # an hour bucket border
LINES = 50_000
SHARING = 500  # lines per timestamp
WINDOW = {"start_time": format_rfc3339_ns(BORDER - 3600 * NS_PER_SECOND),
          "end_time": format_rfc3339_ns(BORDER + 3600 * NS_PER_SECOND)}


@pytest.fixture(scope="module")
def ingested(integration_settings, real_store):
    """50,000 lines of one container, 500 per timestamp, across an hour border; plus a pod with
    three containers and a second pod, all posted through the API and written by a worker."""
    pipeline = build_pipeline(integration_settings, real_store)
    namespace = unique("paging")
    big = [fluent_bit_record(namespace, "big", "app", log=f"line {i:05d} {'even' if i % 2 == 0 else 'odd'}",
                             time=BORDER + (i // SHARING - LINES // SHARING // 2) * 1_000_000,
                             stream="stdout" if i % 3 else "stderr")
           for i in range(LINES)]
    merged = [fluent_bit_record(namespace, "web", container, time=BORDER + offset, log=f"{container} {offset}")
              for container, offsets in (("app", (1, 4, 4, 9)), ("proxy", (2, 4, 8)), ("init", (0,)))
              for offset in offsets]
    merged.append(fluent_bit_record(namespace, "db", "pg", time=BORDER + 3, log="pg 3"))
    started = time.perf_counter()
    for first in range(0, LINES, 5000):
        assert pipeline.post(big[first:first + 5000]).status_code == 200
    assert pipeline.post(merged).status_code == 200
    pipeline.drain()
    print(f"\n[query features] {LINES + len(merged)} lines posted and written in "
          f"{time.perf_counter() - started:.1f} s")
    return pipeline, namespace, [r["log"] for r in big]


def get(pipeline, accept=None, **params):
    headers = {"Accept": accept} if accept else None
    response = pipeline.client.simulate_get("/query", params={**WINDOW, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response


def page_through(pipeline, namespace, **params):
    logs, cursor, pages = [], None, 0
    while True:
        extra = {"cursor": cursor} if cursor else {}
        document = get(pipeline, namespace=namespace, **params, **extra).json
        logs += [row["log"] for row in document["log_rows"]]
        pages += 1
        cursor = document.get("next_cursor")
        if cursor is None:
            return logs, pages


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_paging_through_50000_lines_returns_each_exactly_once_in_order(ingested, direction):
    pipeline, namespace, sent = ingested
    started = time.perf_counter()
    logs, pages = page_through(pipeline, namespace, pod_name="big", container_name="app",
                               limit="1000", direction=direction)
    print(f"[query features] {direction}: {len(logs)} lines in {pages} pages, "
          f"{time.perf_counter() - started:.1f} s")
    assert logs == (sent if direction == "forward" else sent[::-1])


def test_pages_cut_inside_a_run_of_equal_timestamps_lose_nothing(ingested):
    pipeline, namespace, sent = ingested
    logs, pages = page_through(pipeline, namespace, pod_name="big", container_name="app", limit="333",
                               end_time=format_rfc3339_ns(BORDER - 45 * 1_000_000))
    assert logs == sent[:SHARING * 6]
    assert pages == -(-len(logs) // 333) + (1 if len(logs) % 333 == 0 else 0)


def test_the_seed_request_still_answers_every_line_in_the_seed_shape(ingested):
    pipeline, namespace, sent = ingested
    document = get(pipeline, namespace=namespace, pod_name="big", container_name="app").json
    assert set(document) == {"log_rows"}
    assert [row["log"] for row in document["log_rows"]] == sent
    assert set(document["log_rows"][0]) == {"time", "log"}


def test_contains_filters_on_the_server(ingested):
    pipeline, namespace, sent = ingested
    logs, _ = page_through(pipeline, namespace, pod_name="big", container_name="app", contains="0 even")
    assert logs == [line for line in sent if "0 even" in line]


def test_regex_filters_on_the_server(ingested):
    pipeline, namespace, sent = ingested
    logs, _ = page_through(pipeline, namespace, pod_name="big", container_name="app", regex=r"^line 4\d{3}7 ")
    assert logs == [f"line 4{i:03d}7 odd" for i in range(1000)]


def test_stream_filters_on_the_server(ingested):
    pipeline, namespace, sent = ingested
    logs, _ = page_through(pipeline, namespace, pod_name="big", container_name="app", stream="stderr",
                           limit="5000")
    assert logs == [line for i, line in enumerate(sent) if i % 3 == 0]


def test_a_pod_without_container_merges_its_containers_in_time_order(ingested):
    pipeline, namespace, _ = ingested
    rows = get(pipeline, namespace=namespace, pod_name="web").json["log_rows"]
    assert [(row["container"], row["log"]) for row in rows] == [
        ("init", "init 0"), ("app", "app 1"), ("proxy", "proxy 2"),
        ("app", "app 4"), ("app", "app 4"), ("proxy", "proxy 4"), ("proxy", "proxy 8"), ("app", "app 9"),
    ]


def test_a_namespace_without_pod_merges_every_pod(ingested):
    pipeline, namespace, _ = ingested
    rows = get(pipeline, namespace=namespace, start_time=format_rfc3339_ns(BORDER + 1),
               end_time=format_rfc3339_ns(BORDER + 5)).json["log_rows"]
    assert [(row["pod"], row["container"], row["log"]) for row in rows] == [
        ("web", "app", "app 1"), ("web", "proxy", "proxy 2"), ("db", "pg", "pg 3"),
        ("web", "app", "app 4"), ("web", "app", "app 4"), ("web", "proxy", "proxy 4")]


def test_paging_a_whole_namespace_backward_returns_each_line_once(ingested):
    pipeline, namespace, sent = ingested
    logs, _ = page_through(pipeline, namespace, limit="2000", direction="backward",
                           start_time=format_rfc3339_ns(BORDER - 2_000_000), end_time=format_rfc3339_ns(BORDER + 9))
    # 1,500 lines of "big" at three timestamps, and all nine of "web" and "db" (two read "app 4").
    assert len(logs) == 3 * SHARING + 9 and len(set(logs)) == 3 * SHARING + 8
    assert logs[:3] == ["app 9", "proxy 8", "proxy 4"]


def test_ndjson_streams_all_50000_lines(ingested):
    pipeline, namespace, sent = ingested
    response = get(pipeline, "application/x-ndjson", namespace=namespace, pod_name="big", container_name="app")
    assert [json.loads(line)["log"] for line in response.text.splitlines()] == sent


def test_text_prints_the_lines_like_kubectl_logs(ingested):
    pipeline, namespace, sent = ingested
    response = get(pipeline, "text/plain", namespace=namespace, pod_name="big", container_name="app", limit="3")
    assert response.text == "".join(f"{line}\n" for line in sent[:3])


def test_discovery_lists_what_the_worker_indexed(ingested):
    pipeline, namespace, _ = ingested
    client = pipeline.client
    assert namespace in client.simulate_get("/namespaces", params=WINDOW).json["namespaces"]
    assert client.simulate_get("/pods", params={**WINDOW, "namespace": namespace}).json == {
        "pods": ["big", "db", "web"]}
    assert client.simulate_get("/containers", params={**WINDOW, "namespace": namespace, "pod_name": "web"}).json == {
        "containers": ["app", "init", "proxy"]}
