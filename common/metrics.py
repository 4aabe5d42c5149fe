"""Prometheus metrics of the API and of a worker, each in a registry of its own (no globals).

With several API processes (API_PROCESSES > 1, api/supervisor.py) each process writes its values to
files in the supervisor's PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode, chosen
when prometheus_client is first imported) and /metrics, whichever process answers, sums the files
of every process that ever ran in this start: counters and histograms keep the counts of a process
that died. Each gauge says how its processes' values combine (`multiprocess_mode`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from common.queue import QueueStatus, QueueUnavailable

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class QueueCollector(Collector):
    """Queue depth and failed jobs, read from Redis at scrape time."""

    def __init__(self, read_status: Callable[[], QueueStatus]):
        self._read_status = read_status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("logserver_redis_up", "1 when Redis answered this scrape, else 0")
        try:
            status = self._read_status()
        except QueueUnavailable as error:
            log.warning("event=metrics_queue_status_failed error=%s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("logserver_queue_depth", "Batches waiting in the queue", value=status.queued)
        yield GaugeMetricFamily(
            "logserver_queue_started_jobs", "Batches being written by a worker", value=status.started
        )
        yield GaugeMetricFamily("logserver_queue_workers", "Workers registered on the queue", value=status.workers)
        yield GaugeMetricFamily(
            "logserver_queue_oldest_batch_age_seconds",
            "How long the batch at the head of the queue has waited (0 when none waits)",
            value=status.oldest_wait_seconds,
        )
        yield GaugeMetricFamily(
            "logserver_queue_failed_jobs",
            "Batches that exhausted their retries (see requeue-failed)",
            value=status.failed,
        )


class ApiMetrics:
    """The API's metrics. `registry` is what /metrics exposes: this process's own metrics, or, with
    `multiprocess_dir`, those of every API process of this start, read from that folder's files."""

    def __init__(self, read_queue_status: Callable[[], QueueStatus] | None = None,
                 multiprocess_dir: str | None = None):
        self.registry = CollectorRegistry()
        # Multiprocess: this process's values go to files only; exposing them from the registry as
        # well would count them twice.
        own = None if multiprocess_dir else self.registry
        if multiprocess_dir:
            MultiProcessCollector(self.registry, path=multiprocess_dir)
        self.requests = Counter(
            "logserver_http_requests", "HTTP requests served", ["method", "path", "status"], registry=own,
        )
        self.latency = Histogram(
            "logserver_http_request_duration_seconds", "HTTP request latency", ["method", "path"],
            buckets=_LATENCY_BUCKETS, registry=own,
        )
        # The sum over the live processes: a dead process's requests are no longer in flight.
        self.in_flight = Gauge(
            "logserver_http_requests_in_flight", "Requests whose answer is being built (summed over the live API processes)",
            registry=own, multiprocess_mode="livesum",
        )
        self.records_accepted = Counter("logserver_records_accepted", "Records validated and queued", registry=own)
        self.records_rejected = Counter("logserver_records_rejected", "Records refused by validation", registry=own)
        self.lines_truncated = Counter("logserver_lines_truncated", "Log lines cut to MAX_LINE_BYTES", registry=own)
        if read_queue_status is not None:
            # Read from Redis by the process that answers the scrape: one value, no files.
            self.registry.register(QueueCollector(read_queue_status))

    def observe_request(self, method: str, path: str, status: str, seconds: float) -> None:
        self.requests.labels(method, path, status).inc()
        self.latency.labels(method, path).observe(seconds)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rows_written = Counter(
            "logserver_worker_rows_written", "Log rows written to Cassandra", registry=self.registry
        )
        self.batches = Counter(
            "logserver_worker_batches", "Batches processed, by outcome", ["outcome"], registry=self.registry
        )
        self.write_latency = Histogram(
            "logserver_worker_write_duration_seconds", "Time to write one batch to Cassandra",
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.lag = Histogram(
            "logserver_worker_lag_seconds", "Time from enqueue (API) to written (Cassandra)",
            buckets=_LAG_BUCKETS, registry=self.registry,
        )
        self.last_write = Gauge(
            "logserver_worker_last_write_timestamp_seconds", "Unix time of the last batch written",
            registry=self.registry,
        )
        self.blocks_merged = Counter(
            "logserver_worker_blocks_merged", "Small blocks merged into bigger ones (blocks layout), by side",
            ["side"], registry=self.registry,
        )
