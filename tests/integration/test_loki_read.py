"""Loki's read API on the real pipeline, with the requests Grafana's Loki data source and logcli send:
lines go in through POST /write, a worker writes them and the series index to the real Cassandra,
and they are read back through /loki/api/v1/*."""

from __future__ import annotations

import collections
import urllib.parse

import pytest

from common.timestamps import NS_PER_SECOND
from tests.integration.pipeline import build_pipeline, unique
from tests.loki_paging import logcli_read, read_past_each_page
from tests.records import fluent_bit_record

pytestmark = pytest.mark.integration

S = NS_PER_SECOND
BORDER = 1_720_000_000 * S - (1_720_000_000 % 3600) * S  # an hour bucket border
LINES = 5000
SHARING = 10  # lines per timestamp
FIRST = BORDER - (LINES // SHARING // 2) * 1_000_000  # one ms per timestamp, across the border
START, END = BORDER - 3600 * S, BORDER + 3600 * S


@pytest.fixture(scope="module")
def loki(integration_settings, real_store):
    pipeline = build_pipeline(integration_settings, real_store)
    namespace = unique("loki")
    labels = {"app.kubernetes.io/name": "shop", "tier": "web"}
    lines = [fluent_bit_record(namespace, "web-1", "app", time=FIRST + (i // SHARING) * 1_000_000,
                               log=f"level={'error' if i % 5 == 0 else 'info'} n={i} msg=\"line {i}\"",
                               stream="stderr" if i % 5 == 0 else "stdout", metadata={"labels": labels})
             for i in range(LINES)]
    db = [fluent_bit_record(namespace, "db-0", "pg", time=BORDER + i * S, log=f'{{"level":"warn","n":{i}}}',
                            metadata={"labels": {"app": "db"}}) for i in range(3)]
    for first in range(0, LINES, 1000):
        assert pipeline.post(lines[first:first + 1000]).status_code == 200
    assert pipeline.post(db).status_code == 200
    pipeline.drain()
    return pipeline, namespace, [record["log"] for record in lines]


def get(pipeline, path, **params):
    response = pipeline.client.simulate_get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json


def test_grafanas_save_and_test(loki):
    pipeline, _, _ = loki
    # Grafana's health check, verbatim: it requires a vector with one sample valued 2.
    response = pipeline.client.simulate_get("/loki/api/v1/query", query_string="query=vector(1)%2Bvector(1)&time=4000000000")
    assert response.status_code == 200
    assert response.json == {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {}, "value": [4000000000, "2"]}], "stats": {}}}


def test_labels_with_and_without_a_query(loki):
    pipeline, namespace, _ = loki
    mine = get(pipeline, "/loki/api/v1/labels", start=str(START), end=str(END), query=f'{{namespace="{namespace}"}}')
    assert mine == {"status": "success", "data": [
        "app", "app_kubernetes_io_name", "container", "namespace", "pod", "stream", "tier"]}
    everyone = get(pipeline, "/loki/api/v1/labels", start=str(START), end=str(END))["data"]
    assert set(mine["data"]) <= set(everyone)


def test_label_values_with_and_without_a_query(loki):
    pipeline, namespace, _ = loki
    assert namespace in get(pipeline, f"/loki/api/v1/label/namespace/values", start=str(START), end=str(END))["data"]
    pods = get(pipeline, "/loki/api/v1/label/pod/values", start=str(START), end=str(END),
               query=f'{{namespace="{namespace}"}}')
    assert pods == {"status": "success", "data": ["db-0", "web-1"]}
    streams = get(pipeline, "/loki/api/v1/label/stream/values", start=str(START), end=str(END),
                  query=f'{{namespace="{namespace}", container="app"}}')
    assert streams["data"] == ["stderr", "stdout"]


def test_series_with_match(loki):
    pipeline, namespace, _ = loki
    query = urllib.parse.urlencode({"match[]": f'{{namespace="{namespace}", tier="web"}}', "start": START, "end": END})
    response = pipeline.client.simulate_get("/loki/api/v1/series", query_string=query)
    assert response.json == {"status": "success", "data": [
        {"app_kubernetes_io_name": "shop", "container": "app", "namespace": namespace, "pod": "web-1",
         "stream": stream, "tier": "web"} for stream in ("stderr", "stdout")]}


def test_query_range_with_filters_as_grafana_explore_sends_it(loki):
    pipeline, namespace, logs = loki
    response = get(pipeline, "/loki/api/v1/query_range", direction="backward", limit="1000", start=str(START),
                   end=str(END), step="2000ms",
                   query=f'{{namespace="{namespace}", stream="stderr"}} |= "level=error" | logfmt | n >= 4900 '
                         '| drop __error__, __error_details__')
    values = [line for stream in response["data"]["result"] for _, line in stream["values"]]
    assert sorted(values) == sorted(log for i, log in enumerate(logs) if i % 5 == 0 and i >= 4900)
    assert all(stream["stream"]["level"] == "error" for stream in response["data"]["result"])


@pytest.mark.parametrize("parser", ["logfmt", "json"])
def test_grafanas_logs_volume_query(loki, parser):
    pipeline, namespace, _ = loki
    container = "app" if parser == "logfmt" else "pg"
    response = get(pipeline, "/loki/api/v1/query_range", start=str(START), end=str(END), step="60000ms",
                   query=f'sum by (level) (count_over_time({{namespace="{namespace}", container="{container}"}} '
                         f'| {parser} | drop __error__, __error_details__ [1m]))')
    assert response["data"]["resultType"] == "matrix"
    totals = {series["metric"]["level"]: sum(int(value) for _, value in series["values"])
              for series in response["data"]["result"]}
    assert totals == ({"error": LINES // 5, "info": LINES - LINES // 5} if parser == "logfmt" else {"warn": 3})


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_5000_lines_sharing_timestamps_paged_as_logcli_pages_come_back_each_once(loki, direction):
    pipeline, namespace, logs = loki

    def page(params):
        return get(pipeline, "/loki/api/v1/query_range", **params)

    read = logcli_read(page, f'{{namespace="{namespace}", container="app"}}', START, END, batch=1000,
                       direction=direction)
    assert collections.Counter(line for _, line in read) == collections.Counter(logs)
    assert [ts for ts, _ in read] == sorted((ts for ts, _ in read), reverse=direction == "backward")


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_5000_lines_paged_from_just_past_each_pages_last_timestamp_come_back_each_once(loki, direction):
    pipeline, namespace, logs = loki

    def page(params):
        return get(pipeline, "/loki/api/v1/query_range", **params)

    read = read_past_each_page(page, f'{{namespace="{namespace}", container="app"}}', START, END, batch=995,
                               direction=direction)
    assert len(read) == LINES and collections.Counter(line for _, line in read) == collections.Counter(logs)
