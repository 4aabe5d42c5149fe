"""Building and running a worker process: a non-forking RQ worker with one Cassandra session.

RQ's default worker forks a child per job, which would mean a new Cassandra connection per batch
(and the driver does not survive a fork). `StoreWorker` runs jobs in its own process and hands each
job the process's `JobContext`. RQ's scheduler (needed for retry back-off) is forked when `work()`
starts, before the store has connected: the store connects lazily, on the first job.

A job whose worker died is found by its heartbeat expiring. RQ's non-forking worker does not beat
while a job runs, so its TTL must outlast the job timeout (minutes). Here a thread beats every
HEARTBEAT_EVERY_SECONDS during the job, so the TTL can be short and a killed worker's batch is
retried within HEARTBEAT_TTL_SECONDS plus one maintenance interval. Each maintenance pass also
queues again any stored batch whose job RQ lost track of (see BatchQueue.requeue_orphans).

A job is run only once BatchQueue.check_job accepted it. A refused one (and a pickled one, which
RQ cannot read as JSON) goes straight to the failed registry, and its batch, if any, is queued
again as a new job (BatchQueue.rescue_payload).

A write that fails for a reason that is not the batch's own (Cassandra down, unavailable at the
consistency level, timing out, overloaded: StoreUnavailable) spends none of the job's RQ retries:
the job goes back to the front of the queue and the worker pauses before taking a job again,
longer after each such failure in a row (STORE_BACKOFF), and until Cassandra answers a ping. Only
a batch Cassandra refuses (WriteRefused, or any other error) spends its retries, and one that can
never be written (BatchNeverWritable) goes to the failed registry at once. Settings that disagree
with the schema (StoreConfigError) stop the worker, the batch untouched.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import threading
import time

import redis
from prometheus_client import start_http_server
from rq.exceptions import DeserializationError
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job
from rq.utils import as_text, current_timestamp
from rq.worker import SimpleWorker

from common.metrics import WorkerMetrics
from common.queue import BatchJob, BatchQueue, RefusedJob, connect_redis
from common.settings import Settings
from common.log_store import BatchNeverWritable, LogStore, StoreConfigError, StoreUnavailable
from common.store import CassandraStore
from workers.jobs import JobContext

log = logging.getLogger(__name__)

HEARTBEAT_TTL_SECONDS = 30
HEARTBEAT_EVERY_SECONDS = 10
# RQ beats for the worker itself (HSET + 2 EXPIRE, a round trip each) three times per job, besides
# the beat inside its per-job suspension check. A worker key lives worker_ttl + 60 s: one plain beat
# per second is plenty, and saves ~9 of a job's ~31 Redis round trips.
WORKER_BEAT_MIN_INTERVAL_SECONDS = 1.0
# First and longest pause after a write failed for a reason that is not the batch's own.
STORE_BACKOFF = (1.0, 10.0)


class LiveExecutionRegistry(ExecutionRegistry):
    """RQ 3.0 keeps an execution listed for 60 s after its key expired (a killed worker's), and
    fetching it raises: a retried job would then fail its own clean-up after a successful write.
    Expired executions are skipped instead.

    RQ reads a job's executions twice while finishing it, in three round trips each (expired
    entries dropped, ids listed, each execution fetched); here in two, with pipelines."""

    def get_execution_ids(self, start: int = 0, end: int = -1) -> list[str]:
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(self.key, 0, current_timestamp())  # RQ's cleanup()
            pipe.zrange(self.key, start, end)
            _, execution_ids = pipe.execute()
        return [as_text(execution_id) for execution_id in execution_ids]

    def get_executions(self, start: int = 0, end: int = -1) -> list[Execution]:
        candidates = [Execution(id=execution_id, job_id=self.job_id, connection=self.connection)
                      for execution_id in self.get_execution_ids(start, end)]
        if not candidates:
            return []
        with self.connection.pipeline(transaction=False) as pipe:
            for execution in candidates:
                pipe.hgetall(execution.key)
            stored = pipe.execute()
        executions = []
        for execution, data in zip(candidates, stored):
            if data:
                execution.restore(data)
                executions.append(execution)
            else:
                log.info("event=expired_execution_skipped job=%s execution=%s", self.job_id, execution.id)
        return executions


class ContextJob(BatchJob):
    """An RQ job whose function receives the worker's JobContext as its first argument."""

    context: JobContext | None = None
    store_was_unavailable = False  # an outage or a transient refusal: not the batch's fault
    never_writable = False
    config_error: StoreConfigError | None = None

    def _execute(self):
        self.context.queue.check_job(self)  # before self.func imports whatever the hash names
        try:
            return self.func(self.context, *self.args, **self.kwargs)
        except StoreConfigError as error:
            self.config_error = error
            raise
        except StoreUnavailable:
            self.store_was_unavailable = True
            raise
        except BatchNeverWritable:
            self.never_writable = True
            raise

    @property
    def execution_registry(self) -> ExecutionRegistry:
        return LiveExecutionRegistry(job_id=self.id, connection=self.connection)


class StoreWorker(SimpleWorker):
    def __init__(self, *args, context: JobContext, store_backoff: tuple[float, float] = STORE_BACKOFF, **kwargs):
        super().__init__(*args, job_class=ContextJob, serializer=context.queue.rq_queue.serializer, **kwargs)
        self.push_exc_handler(self._handle_refused_job)
        self.context = context
        self._store_backoff = store_backoff
        self._next_pause: float | None = None  # after the next store failure; None: the first pause
        self._last_plain_beat = -WORKER_BEAT_MIN_INTERVAL_SECONDS
        # Set when the settings disagree with the schema: the worker stops, run_worker raises it.
        self.store_config_error: StoreConfigError | None = None

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        """RQ's plain beats (default TTL, no pipeline) at most once per WORKER_BEAT_MIN_INTERVAL_SECONDS,
        and in one round trip; beats with a TTL or in a pipeline go through unchanged."""
        if timeout is not None or pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        beat_at = time.monotonic()
        if beat_at - self._last_plain_beat < WORKER_BEAT_MIN_INTERVAL_SECONDS:
            return
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(pipeline=pipe)
            pipe.execute()
        self._last_plain_beat = beat_at

    def _handle_refused_job(self, job: Job, exc_type, exc_value, traceback) -> bool:
        """RQ exception handler: a refused job is not retried (it would be refused again), and the
        batch stored under its id is queued again as a new job."""
        if not issubclass(exc_type, RefusedJob | DeserializationError):
            return True
        job.retries_left = 0
        reason = exc_value if isinstance(exc_value, RefusedJob) else "job data is not JSON (pickled?)"
        try:
            rescued = self.context.queue.rescue_payload(job.id)
        except redis.RedisError as error:  # the batch stays with the failed job: requeue_failed retries this
            log.error("event=job_refused job=%s reason=%s rescue_failed=%s", job.id, reason, error)
            return True
        log.warning("event=job_refused job=%s reason=%s batch_requeued_as=%s", job.id, reason, rescued or "-")
        return True

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        lock = f"kube-insight:orphan-scan:{self.context.queue.rq_queue.name}"
        try:
            if self.connection.set(lock, self.name, nx=True, ex=max(int(self.maintenance_interval) - 1, 1)):
                orphans = self.context.queue.requeue_orphans()
                if orphans:
                    log.warning("event=orphans_requeued count=%d jobs=%s", len(orphans), ",".join(orphans))
        except redis.RedisError as error:
            log.warning("event=orphan_scan_failed error=%s", error)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return HEARTBEAT_TTL_SECONDS

    def perform_job(self, job, queue, execution) -> bool:
        job.context = self.context
        done = threading.Event()
        beating = threading.Thread(target=self._beat_until, args=(done, job, execution), daemon=True)
        beating.start()
        try:
            succeeded = super().perform_job(job, queue, execution)
        finally:
            done.set()
            beating.join()
        if succeeded:
            self._next_pause = None
        elif job.config_error is not None:
            self._stop_on(job.config_error)
        elif job.store_was_unavailable:
            self._back_off()
        return succeeded

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string="", execution=None) -> None:
        # RQ's own clean-up (abandoned jobs, the intermediate queue) passes jobs of the queue's
        # class, which this worker did not run: theirs is RQ's ordinary retry.
        ran_here = isinstance(job, ContextJob)
        if ran_here and (job.store_was_unavailable or job.config_error is not None):
            self._put_back(job, queue, execution)
            return
        if ran_here and job.never_writable:
            job.retries_left = 0  # retrying cannot help: kept for an operator at once
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)

    def _put_back(self, job, queue, execution) -> None:
        """Queue the job again, first in line, without spending one of its retries: RQ's own retry
        (Job.retry) less the count, in one MULTI/EXEC (Queue.enqueue_job cannot join a pipeline)."""
        with self.connection.pipeline() as pipeline:
            self.cleanup_execution(job, pipeline=pipeline, execution=execution)
            queue._enqueue_job(job, pipeline=pipeline, at_front=True)
            pipeline.execute()
        log.info("event=job_put_back job=%s retries_left=%s", job.id, job.retries_left)

    def _beat_until(self, done: threading.Event, job, execution) -> None:
        while not done.wait(HEARTBEAT_EVERY_SECONDS):
            try:
                self.maintain_heartbeats(job, execution)
            except redis.RedisError as error:
                log.warning("event=heartbeat_failed job=%s error=%s", job.id, error)

    def _back_off(self) -> None:
        """A write failed for a reason that is not the batch's: pause before taking a job again
        (each job would fail alike), then wait until Cassandra answers. After a transient error
        (overloaded, timeouts) Cassandra answers a ping at once, hence the pause first."""
        self._pause(self._take_pause())
        while not self._stop_requested:
            try:
                self.context.store.ping(timeout=2.0)
                return
            except StoreConfigError as error:
                self._stop_on(error)
            except StoreUnavailable as error:
                pause = self._take_pause()
                log.warning("event=store_unavailable retry_in=%.0fs error=%s", pause, error)
                self._pause(pause)

    def _take_pause(self) -> float:
        first, longest = self._store_backoff
        pause = self._next_pause or first
        self._next_pause = min(pause * 2, longest)
        return pause

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop_requested and (left := deadline - time.monotonic()) > 0:
            self.heartbeat()
            time.sleep(min(left, 1.0))

    def _stop_on(self, error: StoreConfigError) -> None:
        log.error("event=worker_stopping reason=store_config_error error=%s", error)
        self.store_config_error = error
        self._stop_requested = True


def build_worker(settings: Settings, connection: redis.Redis, store: LogStore,
                 metrics: WorkerMetrics, store_backoff: tuple[float, float] = STORE_BACKOFF) -> StoreWorker:
    queue = BatchQueue(connection, settings)
    context = JobContext(queue=queue, store=store, metrics=metrics)
    return StoreWorker(
        [queue.rq_queue],
        connection=connection,
        context=context,
        store_backoff=store_backoff,
        maintenance_interval=settings.maintenance_interval_seconds,
        # RQ blocks an idle worker in dequeue for worker_ttl - 15 s (~7 min by default) and runs no
        # maintenance meanwhile: wake it once per maintenance interval so abandoned and orphaned
        # batches are recovered within that interval even when the queue is empty.
        worker_ttl=settings.maintenance_interval_seconds + 15,
    )


def _tie_forked_children_to(metrics_server) -> None:
    """RQ forks its scheduler from the worker. The child must not keep the worker's metrics port,
    nor outlive the worker: a SIGKILLed worker would leave it holding the port, and no new worker
    could start."""

    def in_child() -> None:
        if metrics_server is not None:
            metrics_server.socket.close()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    os.register_at_fork(after_in_child=in_child)


_PR_SET_PDEATHSIG = 1  # Linux prctl: signal the child when its parent dies


def run_worker(settings: Settings) -> None:
    metrics = WorkerMetrics()
    metrics_server = None
    if settings.worker_metrics_port:
        metrics_server, _ = start_http_server(settings.worker_metrics_port, registry=metrics.registry)
        log.info("event=worker_metrics_listening port=%d", settings.worker_metrics_port)
    _tie_forked_children_to(metrics_server)
    store = CassandraStore(settings)
    check_store(store)
    worker = build_worker(settings, connect_redis(settings), store, metrics)
    try:
        worker.work(with_scheduler=True, burst=settings.worker_burst, logging_level=settings.log_level)
    finally:
        store.close()
    if worker.store_config_error is not None:
        raise worker.store_config_error


def check_store(store: CassandraStore) -> None:
    """Connect once at start, so settings that disagree with the schema stop the worker before it
    takes a job (StoreConfigError) and a changed TTL is applied; then close again, since RQ forks
    its scheduler next and the driver does not survive a fork. With Cassandra down, the first job
    connects and checks instead."""
    try:
        store.connect()
    except StoreConfigError:
        raise
    except StoreUnavailable as error:
        log.warning("event=store_check_deferred error=%s", error)
    finally:
        store.close()
