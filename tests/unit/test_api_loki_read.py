"""Loki's read API on the FakeStore: the requests Grafana's Loki data source and logcli send."""

from __future__ import annotations

import base64

import pytest

from common.settings import Settings
from tests.loki_paging import logcli_read, read_past_each_page
from tests.unit.api_harness import FakeStore, build

S = 10**9
T0 = 1_760_000_400 * S  # the start of an hour bucket
NS, POD = "shop", "web-1"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def harness(*lines, settings=None):
    """lines: (offset_s, log[, stream[, labels[, container]]])"""
    store = FakeStore()
    for offset, log, *rest in lines:
        stream = rest[0] if rest else "stdout"
        labels = rest[1] if len(rest) > 1 else {"app": "web"}
        container = rest[2] if len(rest) > 2 else "app"
        store.add(NS, POD, container, T0 + int(offset * S), log, stream, labels)
    return build(settings or Settings(), store)


def get(h, path, **params):
    response = h.client.simulate_get(path, params=params)
    return response


def window(**extra):
    return {"start": str(T0 - 60 * S), "end": str(T0 + 600 * S), **extra}


def test_grafanas_save_and_test_gets_a_vector_of_one_sample_valued_two():
    response = get(harness(), "/loki/api/v1/query", query="vector(1)+vector(1)", time="4000000000")
    assert response.status_code == 200
    # time=4000000000 has 10 digits: seconds, as Loki reads it.
    assert response.json == {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {}, "value": [4000000000, "2"]}], "stats": {}}}


def test_query_range_answers_streams_newest_first_with_their_labels():
    h = harness((1, "one"), (2, "two"), (3, "oops", "stderr"))
    response = get(h, "/loki/api/v1/query_range", query='{app="web"}', **window())
    assert response.status_code == 200
    data = response.json["data"]
    assert data["resultType"] == "streams" and data["stats"] == {}
    streams = {stream["stream"]["stream"]: stream for stream in data["result"]}
    assert streams["stdout"] == {"stream": {"app": "web", "container": "app", "namespace": NS, "pod": POD,
                                            "stream": "stdout"},
                                 "values": [[str(T0 + 2 * S), "two"], [str(T0 + S), "one"]]}
    assert streams["stderr"]["values"] == [[str(T0 + 3 * S), "oops"]]


def test_start_is_inclusive_and_end_exclusive():
    h = harness((1, "at start"), (2, "inside"), (3, "at end"))
    response = get(h, "/loki/api/v1/query_range", query='{app="web"}', start=str(T0 + S), end=str(T0 + 3 * S),
                   direction="forward")
    assert [line for _, line in response.json["data"]["result"][0]["values"]] == ["at start", "inside"]


def test_times_may_be_rfc3339_or_float_seconds():
    h = harness((1, "one"), (2, "two"))
    response = get(h, "/loki/api/v1/query_range", query='{app="web"}', start="2025-10-09T09:00:01Z",
                   end=f"{T0 // S + 2}.0", direction="forward")
    assert [line for _, line in response.json["data"]["result"][0]["values"]] == ["one"]


def test_a_form_encoded_post_answers_as_the_get():
    h = harness((1, "one"), (2, "two"))
    params = window(query='{app="web"}', limit="1")
    body = "&".join(f"{name}={value}" for name, value in params.items()).replace("{", "%7B").replace(
        "}", "%7D").replace('"', "%22").replace("=%22", "%3D%22")
    posted = h.client.simulate_post("/loki/api/v1/query_range", body=body, headers=FORM)
    assert posted.status_code == 200
    assert posted.json == get(h, "/loki/api/v1/query_range", **params).json


def test_line_filters_and_parsers_shape_the_streams():
    h = harness((1, "level=info msg=ok"), (2, "level=error msg=boom"), (3, "level=error msg=again"))
    response = get(h, "/loki/api/v1/query_range", query='{app="web"} |= "msg" | logfmt | level="error" '
                   '| line_format "{{.msg}}"', **window())
    # Extracted labels are stream labels: one stream per label set, as Loki answers.
    streams = sorted(response.json["data"]["result"], key=lambda stream: stream["stream"]["msg"])
    assert [(s["stream"]["level"], s["stream"]["msg"], s["values"]) for s in streams] == [
        ("error", "again", [[str(T0 + 3 * S), "again"]]), ("error", "boom", [[str(T0 + 2 * S), "boom"]])]


def test_a_stream_selector_on_stream_reads_only_those_lines():
    h = harness((1, "out"), (2, "err", "stderr"))
    response = get(h, "/loki/api/v1/query_range", query='{namespace="shop", stream="stderr"}', **window())
    assert [stream["values"] for stream in response.json["data"]["result"]] == [[[str(T0 + 2 * S), "err"]]]


def test_kubernetes_label_names_become_loki_label_names():
    h = harness((1, "a", "stdout", {"app.kubernetes.io/name": "shop"}))
    response = get(h, "/loki/api/v1/query_range", query='{app_kubernetes_io_name="shop"}', **window())
    assert response.json["data"]["result"][0]["stream"]["app_kubernetes_io_name"] == "shop"


def test_a_page_cut_inside_a_timestamp_holds_all_its_lines():
    h = harness(*[(1, f"line {n}") for n in range(5)], (2, "later"))
    response = get(h, "/loki/api/v1/query_range", query='{app="web"}', direction="forward", limit="2", **window())
    assert [line for _, line in response.json["data"]["result"][0]["values"]] == [f"line {n}" for n in range(5)]


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_logcli_paging_reads_every_line_once_when_lines_share_timestamps(direction):
    h = harness(*[(n // 7, f"line {n}") for n in range(300)])

    def page(params):
        return get(h, "/loki/api/v1/query_range", **params).json

    read = logcli_read(page, '{app="web"}', T0, T0 + 3600 * S, batch=20, direction=direction)
    assert sorted(line for _, line in read) == sorted(f"line {n}" for n in range(300))
    assert len(read) == 300
    timestamps = [ts for ts, _ in read]
    assert timestamps == sorted(timestamps, reverse=direction == "backward")


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_paging_from_just_past_each_pages_last_timestamp_loses_no_line(direction):
    h = harness(*[(n // 7, f"line {n}") for n in range(300)])

    def page(params):
        return get(h, "/loki/api/v1/query_range", **params).json

    read = read_past_each_page(page, '{app="web"}', T0, T0 + 3600 * S, batch=20, direction=direction)
    assert sorted(line for _, line in read) == sorted(f"line {n}" for n in range(300)) and len(read) == 300


def test_the_logs_volume_query_counts_lines_per_level_and_step():
    h = harness((1, "level=info a"), (2, "level=info b"), (61, "level=error c"))
    response = get(h, "/loki/api/v1/query_range",
                   query='sum by (level) (count_over_time({app="web"} | logfmt | drop __error__ [1m]))',
                   start=str(T0), end=str(T0 + 120 * S), step="60000ms")
    assert response.status_code == 200
    assert response.json["data"]["resultType"] == "matrix"
    assert response.json["data"]["result"] == [
        {"metric": {"level": "error"}, "values": [[T0 // S + 120, "1"]]},
        {"metric": {"level": "info"}, "values": [[T0 // S + 60, "2"]]},
    ]


def test_an_instant_metric_query_answers_a_vector():
    h = harness((1, "a"), (2, "b"))
    response = get(h, "/loki/api/v1/query", query='count_over_time({app="web"}[5m])', time=str(T0 + 10 * S))
    (sample,) = response.json["data"]["result"]
    assert response.json["data"]["resultType"] == "vector" and sample["value"] == [T0 // S + 10, "2"]


def test_an_instant_log_query_is_refused_as_loki_3_refuses_it():
    response = get(harness((1, "a")), "/loki/api/v1/query", query='{app="web"}')
    assert response.status_code == 400
    assert "log queries are not supported as an instant query type" in response.json["detail"]


def test_an_unsupported_construct_is_a_400_naming_it():
    response = get(harness((1, "a")), "/loki/api/v1/query_range", query='{app="web"} | pattern "<a>"')
    assert response.status_code == 400 and "| pattern" in response.json["detail"]


def test_a_metric_query_cut_by_the_scan_cap_is_refused_not_undercounted():
    h = harness(*[(n, f"line {n}") for n in range(20)], settings=Settings(query_max_scan_rows=10))
    response = get(h, "/loki/api/v1/query_range", query='count_over_time({app="web"}[1h])', **window())
    assert response.status_code == 400 and "QUERY_MAX_SCAN_ROWS=10" in response.json["detail"]


def test_labels_and_values_come_from_the_index_with_and_without_a_query():
    h = harness((1, "a"), (2, "b", "stdout", {"app": "db", "tier": "data"}, "pg"))
    labels = get(h, "/loki/api/v1/labels", **window())
    assert labels.json == {"status": "success", "data": ["app", "container", "namespace", "pod", "stream", "tier"]}
    assert get(h, "/loki/api/v1/label/app/values", **window()).json["data"] == ["db", "web"]
    assert get(h, "/loki/api/v1/label/app/values", query='{container="pg"}', **window()).json["data"] == ["db"]
    assert get(h, "/loki/api/v1/labels", query='{app="web"}', **window()).json["data"] == [
        "app", "container", "namespace", "pod", "stream"]
    assert h.store.reads == []  # no line was read


def test_series_lists_the_label_sets_the_selectors_match():
    h = harness((1, "a"), (2, "b", "stderr"), (3, "c", "stdout", {"app": "db"}, "pg"))
    response = h.client.simulate_get("/loki/api/v1/series", query_string="match[]=%7Bapp%3D%22web%22%7D&"
                                     f"start={T0 - 60 * S}&end={T0 + 600 * S}")
    assert response.json == {"status": "success", "data": [
        {"app": "web", "container": "app", "namespace": NS, "pod": POD, "stream": "stderr"},
        {"app": "web", "container": "app", "namespace": NS, "pod": POD, "stream": "stdout"},
    ]}


def test_series_without_match_is_a_400():
    response = get(harness((1, "a")), "/loki/api/v1/series")
    assert response.status_code == 400 and response.json["message"] == "Invalid parameter 'match[]'"


def test_buildinfo_names_a_version():
    response = get(harness(), "/loki/api/v1/status/buildinfo")
    assert response.status_code == 200 and response.json["version"]


def test_grafanas_basic_auth_with_the_query_token_reads_and_none_is_refused():
    h = harness((1, "a"), settings=Settings(query_token="secret"))
    refused = h.client.simulate_post("/loki/api/v1/query_range", body="query=%7Bapp%3D%22web%22%7D", headers=FORM)
    basic = "Basic " + base64.b64encode(b"grafana:secret").decode()
    allowed = h.client.simulate_get("/loki/api/v1/labels", headers={"Authorization": basic})
    assert refused.status_code == 401 and allowed.status_code == 200


@pytest.mark.parametrize("params, name", [
    ({"start": "yesterday"}, "start"), ({"limit": "0"}, "limit"), ({"direction": "sideways"}, "direction"),
    ({"step": "soon"}, "step"),
])
def test_bad_parameters_are_400s_naming_them(params, name):
    response = get(harness((1, "a")), "/loki/api/v1/query_range", query='{app="web"}', **params)
    assert response.status_code == 400 and response.json["message"] == f"Invalid parameter '{name}'"


def test_a_container_with_several_label_sets_is_reported_under_the_labels_they_share():
    h = harness((1, "v1 line", "stdout", {"app": "web", "version": "1"}),
                (2, "v2 line", "stdout", {"app": "web", "version": "2"}))
    response = get(h, "/loki/api/v1/query_range", query='{app="web"}', **window())
    (stream,) = response.json["data"]["result"]
    assert "version" not in stream["stream"] and [line for _, line in stream["values"]] == ["v2 line", "v1 line"]


def test_a_selector_matching_only_some_of_a_containers_label_sets_is_refused():
    h = harness((1, "v1 line", "stdout", {"app": "web", "version": "1"}),
                (2, "v2 line", "stdout", {"app": "web", "version": "2"}))
    response = get(h, "/loki/api/v1/query_range", query='{version="1"}', **window())
    assert response.status_code == 400 and "several label sets" in response.json["detail"]
