"""GET /query beyond the seed: limit, direction, cursor, filters, whole-pod and namespace scope,
NDJSON and text output, and the caps that bound one request."""

from __future__ import annotations

import json

import pytest

from common.cursor import encode_cursor
from common.log_search import Position
from common.log_store import Direction
from common.settings import Settings
from common.store import StoreUnavailable
from tests.unit.api_harness import FakeStore, build

T0 = 1525651200 * 10**9  # 2018-05-07T00:00:00Z
WINDOW = {"start_time": "2018-05-07T00:00:00Z", "end_time": "2018-05-07T01:00:00Z"}
CONTAINER = {"namespace": "default", "pod_name": "web", "container_name": "app"}


def harness_with(lines, settings: Settings | None = None):
    """lines: (pod, container, offset_ns, log[, stream]) in namespace default."""
    store = FakeStore()
    for pod, container, offset, log, *stream in lines:
        store.add("default", pod, container, T0 + offset, log, *stream)
    return build(settings, store)


def get(harness, accept: str | None = None, **params):
    headers = {"Accept": accept} if accept else None
    return harness.client.simulate_get("/query", params={**WINDOW, **params}, headers=headers)


def logs(response) -> list[str]:
    return [row["log"] for row in response.json["log_rows"]]


SIX = [("web", "app", i, f"line {i}") for i in range(6)]


def test_limit_returns_the_first_lines_and_a_cursor():
    response = get(harness_with(SIX), **CONTAINER, limit="2")
    assert logs(response) == ["line 0", "line 1"]
    assert "next_cursor" in response.json
    assert "truncated" not in response.json


def test_passing_the_cursor_back_continues_right_after_the_last_line():
    harness = harness_with(SIX)
    first = get(harness, **CONTAINER, limit="4")
    assert logs(get(harness, **CONTAINER, limit="4", cursor=first.json["next_cursor"])) == ["line 4", "line 5"]


def test_the_last_page_carries_no_cursor():
    harness = harness_with(SIX)
    first = get(harness, **CONTAINER, limit="4")
    assert "next_cursor" not in get(harness, **CONTAINER, limit="4", cursor=first.json["next_cursor"]).json


def test_backward_returns_the_newest_lines_first():
    assert logs(get(harness_with(SIX), **CONTAINER, limit="2", direction="backward")) == ["line 5", "line 4"]


def test_a_cursor_from_one_direction_is_refused_in_the_other():
    harness = harness_with(SIX)
    cursor = get(harness, **CONTAINER, limit="2").json["next_cursor"]
    response = get(harness, **CONTAINER, direction="backward", cursor=cursor)
    assert response.status_code == 400
    assert "cursor" in response.json["message"]


@pytest.mark.parametrize(("line_id", "ts_offset"), [(2**64 - 1, 3), (2**63, 3), (0, -T0 - 1),
                                                    (0, 2**63)])
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_a_tampered_cursor_out_of_the_columns_range_gets_400(line_id, ts_offset, direction):
    cursor = encode_cursor(Position(T0 + ts_offset, "web", "app", line_id), Direction(direction))
    response = get(harness_with(SIX), **CONTAINER, direction=direction, cursor=cursor)
    assert response.status_code == 400
    assert response.json["message"] == "Invalid parameter 'cursor'"
    assert "out of range" in response.json["detail"]


def test_a_seed_request_cut_by_the_row_cap_says_truncated_and_gives_a_cursor():
    response = get(harness_with(SIX, Settings(query_max_rows=4)), **CONTAINER)
    assert len(response.json["log_rows"]) == 4
    assert response.json["truncated"] is True
    assert "QUERY_MAX_ROWS" in response.json["detail"]
    assert response.json["next_cursor"]


def test_a_limit_above_the_row_cap_is_held_to_the_cap():
    response = get(harness_with(SIX, Settings(query_max_rows=3)), **CONTAINER, limit="1000")
    assert len(response.json["log_rows"]) == 3
    assert response.json["truncated"] is True


def test_a_query_that_reads_more_than_the_scan_cap_is_cut_with_a_cursor():
    harness = harness_with([("web", "app", i, "x") for i in range(10)], Settings(query_max_scan_rows=3))
    response = get(harness, **CONTAINER, contains="nothing like it")
    assert response.json["log_rows"] == []
    assert response.json["truncated"] is True
    assert "QUERY_MAX_SCAN_ROWS" in response.json["detail"]


def test_contains_keeps_only_lines_with_the_substring():
    lines = [("web", "app", 1, "GET /health 200"), ("web", "app", 2, "POST /orders 500")]
    assert logs(get(harness_with(lines), **CONTAINER, contains="/orders")) == ["POST /orders 500"]


def test_regex_keeps_only_matching_lines():
    lines = [("web", "app", 1, "status=200"), ("web", "app", 2, "status=503")]
    assert logs(get(harness_with(lines), **CONTAINER, regex=r"status=5\d\d")) == ["status=503"]


def test_stream_keeps_only_that_stream():
    lines = [("web", "app", 1, "out", "stdout"), ("web", "app", 2, "err", "stderr")]
    assert logs(get(harness_with(lines), **CONTAINER, stream="stderr")) == ["err"]


@pytest.mark.parametrize("params, param", [
    ({"regex": "(a)\\1"}, "regex"),
    ({"regex": "x" * 257}, "regex"),
    ({"stream": "stdin"}, "stream"),
    ({"contains": ""}, "contains"),
    ({"limit": "0"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"direction": "sideways"}, "direction"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"timestamps": "perhaps"}, "timestamps"),
    ({"container_name": ""}, "container_name"),
])
def test_a_bad_parameter_gets_400_naming_it(params, param):
    response = get(harness_with(SIX), **{**CONTAINER, **params})
    assert response.status_code == 400
    assert param in response.json["message"]
    assert set(response.json) == {"message", "detail"}


def test_a_container_without_its_pod_gets_400():
    response = get(harness_with(SIX), namespace="default", container_name="app")
    assert response.status_code == 400
    assert "pod_name" in response.json["message"]


def test_a_parameter_given_twice_gets_400():
    response = harness_with(SIX).client.simulate_get(
        "/query", query_string="namespace=default&namespace=other&start_time=2018-05-07T00:00:00Z")
    assert response.status_code == 400
    assert "namespace" in response.json["message"]


def test_without_a_container_every_container_of_the_pod_comes_in_time_order_with_its_name():
    lines = [("web", "app", 2, "app"), ("web", "proxy", 1, "proxy"), ("db", "pg", 0, "other pod")]
    response = get(harness_with(lines), namespace="default", pod_name="web")
    assert response.json["log_rows"] == [
        {"time": "2018-05-07T00:00:00.000000001Z", "log": "proxy", "container": "proxy"},
        {"time": "2018-05-07T00:00:00.000000002Z", "log": "app", "container": "app"},
    ]


def test_without_a_pod_every_pod_of_the_namespace_comes_with_pod_and_container():
    lines = [("web", "app", 2, "web"), ("db", "pg", 1, "db")]
    response = get(harness_with(lines), namespace="default")
    assert [(row["pod"], row["container"], row["log"]) for row in response.json["log_rows"]] == [
        ("db", "pg", "db"), ("web", "app", "web")]


def test_ndjson_streams_one_row_per_line_and_a_last_line_with_the_cursor():
    response = get(harness_with(SIX), "application/x-ndjson", **CONTAINER, limit="2")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert rows[:2] == [{"time": "2018-05-07T00:00:00Z", "log": "line 0"},
                        {"time": "2018-05-07T00:00:00.000000001Z", "log": "line 1"}]
    assert set(rows[2]) == {"next_cursor"}


def test_ndjson_of_a_complete_answer_has_only_rows():
    response = get(harness_with(SIX), "application/x-ndjson", **CONTAINER)
    assert len(response.text.splitlines()) == 6


def test_ndjson_is_held_to_its_own_larger_cap():
    settings = Settings(query_max_rows=2, query_max_stream_rows=5)
    response = get(harness_with(SIX, settings), "application/x-ndjson", **CONTAINER)
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert len(rows) == 6 and rows[-1]["truncated"] is True


def test_text_prints_lines_like_kubectl_logs():
    lines = [("web", "app", 0, "first"), ("web", "app", 1, "second")]
    response = get(harness_with(lines), "text/plain", **CONTAINER)
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "first\nsecond\n"


def test_text_with_timestamps_prefixes_each_line_with_its_time():
    response = get(harness_with([("web", "app", 0, "first")]), "text/plain", **CONTAINER, timestamps="true")
    assert response.text == "2018-05-07T00:00:00Z first\n"


def test_text_for_a_pod_prefixes_each_line_with_its_container():
    lines = [("web", "app", 0, "a"), ("web", "proxy", 1, "p")]
    response = get(harness_with(lines), "text/plain", namespace="default", pod_name="web")
    assert response.text == "[app] a\n[proxy] p\n"


def test_text_cut_by_the_server_says_so_in_a_last_comment_line():
    response = get(harness_with(SIX, Settings(query_max_stream_rows=2)), "text/plain", **CONTAINER)
    assert response.text.splitlines()[-1].startswith("# truncated:")


def test_any_accept_header_gets_the_seed_json():
    response = get(harness_with(SIX), "*/*", **CONTAINER)
    assert response.headers["content-type"].startswith("application/json")
    assert len(response.json["log_rows"]) == 6


def test_cassandra_down_before_a_stream_starts_gets_503():
    response = get(build(store=FakeStore(down="no host available")), "application/x-ndjson", **CONTAINER)
    assert response.status_code == 503


class StoreFailingMidRead(FakeStore):
    """Hands out `good` lines of a read, then fails as a Cassandra that went away would."""

    good: int = 100

    def read_range(self, partition, low, high, *, direction, page_size, first_page_size=None):
        lines = super().read_range(partition, low, high, direction=direction, page_size=page_size,
                                   first_page_size=first_page_size)

        def failing():
            yield from lines[:self.good]
            raise StoreUnavailable("connection lost")

        return failing()


def test_cassandra_lost_in_the_middle_of_a_stream_ends_it_with_an_error_line():
    store = StoreFailingMidRead()
    for i in range(200):
        store.add("default", "web", "app", T0 + i, "x" * 1000)
    response = get(build(store=store), "application/x-ndjson", **CONTAINER)
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert response.status_code == 200
    assert [row["log"] for row in rows[:-1]] == ["x" * 1000] * 100
    assert rows[-1] == {"error": {"message": "Cassandra unavailable", "detail": "connection lost"}}
