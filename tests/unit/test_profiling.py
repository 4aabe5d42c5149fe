"""Profiling endpoints exist only when enabled, and return a CPU profile and a heap snapshot."""

from __future__ import annotations

import threading
import tracemalloc

import pytest

from common.settings import Settings
from tests.unit.api_harness import build


@pytest.fixture(autouse=True)
def stop_heap_tracing_afterwards():
    """An enabled app starts tracemalloc for the process; it would slow every later test."""
    yield
    tracemalloc.stop()


def test_profiling_is_off_by_default():
    assert build().client.simulate_get("/debug/pprof/heap").status_code == 404


def a_recognisable_busy_function(stop: threading.Event) -> None:
    while not stop.is_set():
        stop.wait(0.001)


def test_the_cpu_profile_returns_collapsed_stacks_of_the_running_threads():
    stop = threading.Event()
    busy = threading.Thread(target=a_recognisable_busy_function, args=(stop,))
    busy.start()
    try:
        response = build(Settings(enable_profiling=True)).client.simulate_get(
            "/debug/pprof/profile", params={"seconds": "0.05"})
    finally:
        stop.set()
        busy.join()
    assert response.status_code == 200
    assert "a_recognisable_busy_function" in response.text
    assert all(line.rsplit(" ", 1)[1].isdigit() for line in response.text.splitlines())


def test_the_heap_snapshot_lists_allocations_by_source_line():
    response = build(Settings(enable_profiling=True)).client.simulate_get("/debug/pprof/heap")
    assert response.status_code == 200
    assert response.text.startswith("# traced live memory:")


def test_a_profile_longer_than_a_minute_is_refused():
    response = build(Settings(enable_profiling=True)).client.simulate_get(
        "/debug/pprof/profile", params={"seconds": "600"})
    assert response.status_code == 400


PROFILING_PATHS = ["/debug/pprof/profile?seconds=0.01", "/debug/pprof/heap"]


def get(app_settings, path, headers=None):
    route, _, query = path.partition("?")
    return build(app_settings).client.simulate_get(route, query_string=query, headers=headers or {})


@pytest.mark.parametrize("path", PROFILING_PATHS)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer in-secret"}], ids=["no token", "ingest token"])
def test_with_a_query_token_set_profiling_without_it_gets_401(path, headers):
    settings = Settings(enable_profiling=True, ingest_token="in-secret", query_token="q-secret")
    response = get(settings, path, headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("path", PROFILING_PATHS)
def test_with_a_query_token_set_profiling_with_it_answers(path):
    settings = Settings(enable_profiling=True, query_token="q-secret")
    assert get(settings, path, {"Authorization": "Bearer q-secret"}).status_code == 200
