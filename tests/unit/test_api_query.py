"""GET /query: the seed's parameters and response shape, and a 400 naming each bad parameter."""

from __future__ import annotations

import time

import pytest

from common.settings import Settings
from tests.unit.api_harness import FakeStore, build

PARAMS = {
    "namespace": "default", "pod_name": "nginx-deployment-abcde", "container_name": "nginx",
    "start_time": "2018-05-07T00:00:00.000Z", "end_time": "2018-05-07T00:01:00.000Z",
}
T0 = 1525651200 * 10**9  # 2018-05-07T00:00:00Z


def query(harness, **overrides):
    params = {k: v for k, v in {**PARAMS, **overrides}.items() if v is not None}
    return harness.client.simulate_get("/query", params=params)


def test_rows_come_back_in_the_seed_shape_with_trimmed_nanosecond_times():
    harness = build(store=FakeStore(rows=[(T0, "first"), (T0 + 100_000_000, "second"), (T0 + 123, "x")]))
    response = query(harness)
    assert response.status_code == 200
    assert response.json == {"log_rows": [
        {"time": "2018-05-07T00:00:00Z", "log": "first"},
        {"time": "2018-05-07T00:00:00.000000123Z", "log": "x"},
        {"time": "2018-05-07T00:00:00.1Z", "log": "second"},
    ]}


def test_the_range_of_the_parameters_is_inclusive_at_both_ends():
    harness = build(store=FakeStore(rows=[(T0 - 1, "before"), (T0, "start"), (T0 + 60 * 10**9, "end"),
                                          (T0 + 60 * 10**9 + 1, "after")]))
    assert [row["log"] for row in query(harness).json["log_rows"]] == ["start", "end"]


def test_end_time_defaults_to_now():
    harness = build()
    an_hour_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    assert query(harness, start_time=an_hour_ago, end_time=None).status_code == 200
    start, end = harness.store.reads[0][4][0], harness.store.reads[-1][5][0]
    assert 3599 <= (end - start) / 10**9 <= 3700


@pytest.mark.parametrize("missing", ["namespace", "start_time"])
def test_a_missing_required_parameter_gets_400_naming_it(missing):
    response = query(build(), **{missing: None})
    assert response.status_code == 400
    assert missing in response.json["message"]
    assert set(response.json) == {"message", "detail"}


@pytest.mark.parametrize("param", ["start_time", "end_time"])
def test_a_time_that_is_not_rfc3339_gets_400_naming_it(param):
    response = query(build(), **{param: "2018-05-07 noon"})
    assert response.status_code == 400
    assert param in response.json["message"]


def test_start_after_end_gets_400():
    response = query(build(), start_time="2018-05-08T00:00:00Z")
    assert response.status_code == 400
    assert "before" in response.json["detail"]


def test_a_range_wider_than_the_cap_gets_400():
    response = query(build(Settings(query_max_range_seconds=30)))
    assert response.status_code == 400
    assert "QUERY_MAX_RANGE_SECONDS" in response.json["detail"]


def test_an_answer_cut_by_the_row_cap_says_so():
    harness = build(Settings(query_max_rows=2), FakeStore(rows=[(T0 + i, str(i)) for i in range(5)]))
    response = query(harness)
    assert len(response.json["log_rows"]) == 2
    assert response.json["truncated"] is True


def test_cassandra_unavailable_gets_503():
    response = query(build(store=FakeStore(down="no host available")))
    assert response.status_code == 503
    assert "Cassandra" in response.json["message"]
