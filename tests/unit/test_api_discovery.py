"""GET /namespaces, /pods, /containers: answered from the index, over a range (default the last day)."""

from __future__ import annotations

import time

import pytest

from common.settings import Settings
from tests.unit.api_harness import FakeStore, build

T0 = 1525651200 * 10**9  # 2018-05-07T00:00:00Z
HOUR = 3600 * 10**9
WINDOW = {"start_time": "2018-05-07T00:00:00Z", "end_time": "2018-05-07T03:00:00Z"}


def harness():
    store = FakeStore()
    store.add("shop", "web-1", "app", T0, "x")
    store.add("shop", "web-1", "proxy", T0 + 2 * HOUR, "x")
    store.add("shop", "db-0", "pg", T0 + HOUR, "x")
    store.add("kube-system", "dns", "coredns", T0, "x")
    store.add("old", "gone", "c", T0 - 5 * HOUR, "x")
    return build(store=store)


def get(path, **params):
    return harness().client.simulate_get(path, params=params)


def test_namespaces_lists_every_namespace_with_lines_in_the_range_sorted():
    assert get("/namespaces", **WINDOW).json == {"namespaces": ["kube-system", "shop"]}


def test_pods_lists_the_namespace_pods_with_lines_in_the_range():
    assert get("/pods", namespace="shop", **WINDOW).json == {"pods": ["db-0", "web-1"]}


def test_containers_lists_the_pod_containers_with_lines_in_the_range():
    assert get("/containers", namespace="shop", pod_name="web-1", **WINDOW).json == {"containers": ["app", "proxy"]}


def test_a_narrower_range_lists_only_who_had_lines_in_it():
    response = get("/containers", namespace="shop", pod_name="web-1",
                   start_time="2018-05-07T00:00:00Z", end_time="2018-05-07T00:30:00Z")
    assert response.json == {"containers": ["app"]}


def test_the_range_defaults_to_the_last_day():
    store = FakeStore()
    now = time.time_ns()
    store.add("recent", "p", "c", now - 2 * HOUR, "x")
    store.add("stale", "p", "c", now - 30 * HOUR, "x")
    assert build(store=store).client.simulate_get("/namespaces").json == {"namespaces": ["recent"]}


@pytest.mark.parametrize("path, params, param", [
    ("/pods", {}, "namespace"),
    ("/containers", {"namespace": "shop"}, "pod_name"),
    ("/namespaces", {"start_time": "yesterday"}, "start_time"),
    ("/namespaces", {"start_time": "2018-05-07T03:00:00Z", "end_time": "2018-05-07T00:00:00Z"}, "start_time"),
])
def test_a_bad_parameter_gets_400_naming_it(path, params, param):
    response = get(path, **params)
    assert response.status_code == 400
    assert param in response.json["message"]


def test_a_range_wider_than_the_cap_gets_400():
    response = build(Settings(query_max_range_seconds=60)).client.simulate_get("/namespaces", params=WINDOW)
    assert response.status_code == 400
    assert "QUERY_MAX_RANGE_SECONDS" in response.json["detail"]


def test_cassandra_unavailable_gets_503():
    response = build(store=FakeStore(down="no host available")).client.simulate_get("/namespaces")
    assert response.status_code == 503


def test_discovery_needs_the_query_token_when_one_is_set():
    client = build(Settings(query_token="s3cret")).client
    assert client.simulate_get("/namespaces").status_code == 401
    assert client.simulate_get("/namespaces", headers={"Authorization": "Bearer s3cret"}).status_code == 200
