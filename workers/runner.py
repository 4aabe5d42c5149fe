"""Building and running a worker process: a non-forking RQ worker with one Cassandra session.

RQ's default worker forks a child per job, which would mean a new Cassandra connection per batch
(and the driver does not survive a fork). `StoreWorker` runs jobs in its own process and hands each
job the process's `JobContext`. RQ's scheduler (needed for retry back-off) is forked when `work()`
starts, before the store has connected: the store connects lazily, on the first job.
"""

from __future__ import annotations

import logging
import time

import redis
from prometheus_client import start_http_server
from rq.job import Job
from rq.worker import SimpleWorker

from common.metrics import WorkerMetrics
from common.queue import BatchQueue, connect_redis
from common.settings import Settings
from common.store import CassandraStore, StoreUnavailable
from workers.jobs import JobContext

log = logging.getLogger(__name__)


class ContextJob(Job):
    """An RQ job whose function receives the worker's JobContext as its first argument."""

    context: JobContext | None = None
    store_was_unavailable = False

    def _execute(self):
        try:
            return self.func(self.context, *self.args, **self.kwargs)
        except StoreUnavailable:
            self.store_was_unavailable = True
            raise


class StoreWorker(SimpleWorker):
    def __init__(self, *args, context: JobContext, store_backoff: tuple[float, float] = (1.0, 30.0), **kwargs):
        super().__init__(*args, job_class=ContextJob, **kwargs)
        self.context = context
        self._store_backoff = store_backoff  # first and longest pause while Cassandra is down

    def perform_job(self, job, queue, execution) -> bool:
        job.context = self.context
        succeeded = super().perform_job(job, queue, execution)
        if not succeeded and job.store_was_unavailable:
            self._wait_for_store()
        return succeeded

    def _wait_for_store(self) -> None:
        """Cassandra is down: stop taking jobs (each would burn a retry) until it answers again."""
        delay, longest = self._store_backoff
        while not self._stop_requested:
            try:
                self.context.store.ping(timeout=2.0)
                log.info("event=store_back")
                return
            except StoreUnavailable as error:
                log.warning("event=store_unavailable retry_in=%.0fs error=%s", delay, error)
                self.heartbeat()
                time.sleep(delay)
                delay = min(delay * 2, longest)


def build_worker(settings: Settings, connection: redis.Redis, store: CassandraStore,
                 metrics: WorkerMetrics) -> StoreWorker:
    queue = BatchQueue(connection, settings)
    context = JobContext(queue=queue, store=store, metrics=metrics)
    return StoreWorker(
        [queue.rq_queue],
        connection=connection,
        context=context,
        maintenance_interval=settings.maintenance_interval_seconds,
    )


def run_worker(settings: Settings) -> None:
    metrics = WorkerMetrics()
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, registry=metrics.registry)
        log.info("event=worker_metrics_listening port=%d", settings.worker_metrics_port)
    store = CassandraStore(settings)
    worker = build_worker(settings, connect_redis(settings), store, metrics)
    try:
        worker.work(with_scheduler=True, burst=settings.worker_burst, logging_level=settings.log_level)
    finally:
        store.close()
