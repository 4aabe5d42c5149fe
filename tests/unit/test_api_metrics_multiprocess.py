"""/metrics with several API processes (prometheus-client's multiprocess mode, common/metrics.py):
two processes simulated in this one by changing the process id the metric files are named by."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest, values
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

from common.metrics import ApiMetrics

REQUESTS = "logserver_http_requests_total"


@pytest.fixture
def process(tmp_path, monkeypatch):
    """A one-item list holding the id of the "current" process; the metrics' folder is tmp_path."""
    current = [101]
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: current[0]))
    return current


def samples(metrics: ApiMetrics) -> dict[tuple[str, tuple], float]:
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def requests(metrics: ApiMetrics) -> float:
    return samples(metrics).get((REQUESTS, (("method", "POST"), ("path", "/write"), ("status", "200"))), 0)


def test_requests_served_by_two_processes_are_counted_once_each(process, tmp_path):
    first = ApiMetrics(multiprocess_dir=str(tmp_path))
    for _ in range(3):
        first.observe_request("POST", "/write", "200", 0.01)
    process[0] = 102
    second = ApiMetrics(multiprocess_dir=str(tmp_path))
    for _ in range(2):
        second.observe_request("POST", "/write", "200", 0.01)

    assert requests(first) == requests(second) == 5


def test_a_dead_process_keeps_its_counts_and_leaves_the_in_flight_sum(process, tmp_path):
    dead = ApiMetrics(multiprocess_dir=str(tmp_path))
    dead.observe_request("POST", "/write", "200", 0.01)
    dead.in_flight.inc()
    process[0] = 102
    alive = ApiMetrics(multiprocess_dir=str(tmp_path))
    alive.in_flight.inc()
    assert samples(alive)[("logserver_http_requests_in_flight", ())] == 2

    mark_process_dead(101, str(tmp_path))

    assert samples(alive)[("logserver_http_requests_in_flight", ())] == 1
    assert requests(alive) == 1


def test_the_queue_gauges_are_read_once_per_scrape_not_summed_over_processes(process, tmp_path):
    from common.queue import QueueStatus

    status = QueueStatus(queued=7, started=0, failed=0, workers=1)
    ApiMetrics(lambda: status, multiprocess_dir=str(tmp_path))
    process[0] = 102
    answering = ApiMetrics(lambda: status, multiprocess_dir=str(tmp_path))

    assert samples(answering)[("logserver_queue_depth", ())] == 7
