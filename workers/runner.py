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

import functools
import logging
import os
import threading
import time

import redis
from prometheus_client import start_http_server
from rq.exceptions import DeserializationError, StopRequested
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job
from rq.utils import as_text, current_timestamp
from rq.worker import SimpleWorker

from common.gc_tuning import tune_for_service
from common.metrics import WorkerMetrics
from common.parent_death import signal_when_parent_dies
from common.queue import BatchJob, BatchQueue, RefusedJob, connect_redis, describe_redis_error
from common.redis_keys import orphan_scan_lock_key
from common.settings import Settings
from common.log_store import BatchNeverWritable, LogStore, StoreConfigError, StoreUnavailable
from common.store import CassandraStore
from common.merge_candidates import MergeCandidates
from workers.jobs import JobContext
from workers.merging import merge_due

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
    entries dropped, ids listed, each execution fetched); here in two, with pipelines.

    No public hook: RQ builds this registry itself (Job.execution_registry) and offers no option to
    skip a missing execution. Both methods keep RQ's public signatures (tests/unit/test_rq_contract.py)."""

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
    """An RQ job whose function receives the worker's JobContext as its first argument, and runs
    only once BatchQueue.check_job accepted the job.

    StoreWorker sets `context` before it runs the job, and its exception handler notes why a run
    failed (the three flags below), for handle_job_failure and perform_job to act on."""

    context: JobContext | None = None
    store_was_unavailable = False  # an outage or a transient refusal: not the batch's fault
    never_writable = False
    config_error: StoreConfigError | None = None
    _checked_func = None

    @property
    def func(self):
        """What RQ calls to run the job (with the job's args): write_batch with the context bound.

        No public hook hands a per-process object to a job function, nor runs a check before RQ
        imports the function a job hash names: RQ runs `job.func(*job.args, **job.kwargs)`, and
        this public property is where both fit (the contract test checks RQ still runs it).
        Read twice per run by RQ; checked and imported once."""
        if self._checked_func is None:
            self.context.queue.check_job(self)  # before super().func imports whatever the hash names
            self._checked_func = functools.partial(super().func, self.context)
        return self._checked_func

    @property
    def execution_registry(self) -> ExecutionRegistry:
        return LiveExecutionRegistry(job_id=self.id, connection=self.connection)


class StoreWorker(SimpleWorker):
    """RQ's non-forking worker, extended where RQ has a documented hook (job_class, serializer,
    exception handlers) and otherwise by overriding its public methods, each saying why.
    tests/unit/test_rq_contract.py fails, naming what moved, if an RQ release changes any of them."""

    def __init__(self, *args, context: JobContext, store_backoff: tuple[float, float] = STORE_BACKOFF, **kwargs):
        super().__init__(*args, job_class=ContextJob, serializer=context.queue.rq_queue.serializer, **kwargs)
        self.push_exc_handler(self._note_failure_cause)
        self.push_exc_handler(self._handle_refused_job)
        self.context = context
        self._store_backoff = store_backoff
        self._next_pause: float | None = None  # after the next store failure; None: the first pause
        self._last_plain_beat = -WORKER_BEAT_MIN_INTERVAL_SECONDS
        # Set when the settings disagree with the schema: the worker stops, run_worker raises it.
        self.store_config_error: StoreConfigError | None = None
        self.stop_asked = False  # a warm shutdown was requested (SIGTERM/SIGINT), not a lost Redis

    def handle_warm_shutdown_request(self) -> None:
        """RQ's hook on SIGTERM/SIGINT: noted, so that run_worker stops instead of reconnecting, and
        the running job writes no more batches than those it has (WORKER_BATCHES_PER_JOB)."""
        self.stop_asked = True
        self.context.stopping.set()
        super().handle_warm_shutdown_request()

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        """RQ's plain beats (default TTL, no pipeline) at most once per WORKER_BEAT_MIN_INTERVAL_SECONDS,
        and in one round trip; beats with a TTL or in a pipeline go through unchanged.

        No public hook: RQ calls heartbeat() from its work loop, dequeue and suspension check, with
        no option for how often."""
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

    def _note_failure_cause(self, job: ContextJob, exc_type, exc_value, traceback) -> bool:
        """RQ exception handler (run before handle_job_failure): why the run failed, for
        handle_job_failure and perform_job to act on."""
        if issubclass(exc_type, StoreConfigError):
            job.config_error = exc_value
        elif issubclass(exc_type, StoreUnavailable):
            job.store_was_unavailable = True
        elif issubclass(exc_type, BatchNeverWritable):
            job.never_writable = True
        return True

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
        """RQ's maintenance between two scans of our own, by one worker per pass (a lock that
        expires before the next pass): stranded jobs first, before RQ's clean-up drops their
        entries, then orphaned batches.

        No public hook: RQ's maintenance interval has no callback; its cron scheduler would be a
        process of its own, with an interval of its own."""
        scanning = self._take_scan_lock()
        if scanning:
            self._requeue("stranded_jobs_requeued", self.context.queue.requeue_stranded)
        super().run_maintenance_tasks()
        if scanning:
            self._requeue("orphans_requeued", self.context.queue.requeue_orphans)
            self._merge_small_blocks()

    def _merge_small_blocks(self) -> None:
        """The due small blocks' merge (workers.merging), when merging is on; a failure ends the
        pass and leaves the candidates for the next one."""
        context = self.context
        if context.merge_candidates is None:
            return
        try:
            merge_due(context.store, context.merge_candidates, context.merge_after_seconds, context.metrics)
        except (StoreUnavailable, redis.RedisError) as error:
            log.warning("event=block_merge_failed error=%s", error)

    def _take_scan_lock(self) -> bool:
        lock = orphan_scan_lock_key(self.context.queue.rq_queue.name)
        try:
            return bool(self.connection.set(lock, self.name, nx=True, ex=max(int(self.maintenance_interval) - 1, 1)))
        except redis.RedisError as error:
            log.warning("event=orphan_scan_failed error=%s", error)
            return False

    @staticmethod
    def _requeue(event: str, scan) -> None:
        try:
            job_ids = scan()
        except redis.RedisError as error:
            log.warning("event=orphan_scan_failed error=%s", error)
            return
        if job_ids:
            log.warning("event=%s count=%d jobs=%s", event, len(job_ids), ",".join(job_ids))

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """HEARTBEAT_TTL_SECONDS, however long the job's timeout (see the module docstring).

        No public hook: RQ's SimpleWorker derives the TTL from the job timeout, with no option."""
        return HEARTBEAT_TTL_SECONDS

    def perform_job(self, job, queue, execution) -> bool:
        """RQ's perform_job with the context handed to the job, a thread beating every
        HEARTBEAT_EVERY_SECONDS meanwhile, and a pause after a store failure.

        No public hook: RQ calls nothing before or after a job in the worker process (job callbacks
        run per job, are named in the untrusted job hash, and get no worker), and its non-forking
        worker does not beat during a job."""
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
        """A job whose store was unavailable goes back to the front of the queue, spending no
        retry; one that can never be written is failed at once; any other is RQ's to retry.
        RQ's own clean-up (abandoned jobs, the intermediate queue) passes jobs of the queue's
        class, which this worker did not run: theirs is RQ's ordinary retry.

        No public hook: exception handlers run before this and cannot stop RQ from spending a
        retry, and a job returning rq.Retry keeps a count (and a result) of its own."""
        ran_here = isinstance(job, ContextJob)
        if ran_here and (job.store_was_unavailable or job.config_error is not None):
            self._put_back(job, queue, execution)
            return
        if ran_here and job.never_writable:
            job.retries_left = 0  # retrying cannot help: kept for an operator at once
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)

    def _put_back(self, job, queue, execution) -> None:
        """Queue the job again, first in line, without spending one of its retries: RQ's own retry
        (Job.retry) less the count, in one MULTI/EXEC. Queue.enqueue_job joins a pipeline only
        in MULTI mode already (else it calls multi() itself, after our commands: an error)."""
        with self.connection.pipeline() as pipeline:
            pipeline.multi()
            self.cleanup_execution(job, pipeline=pipeline, execution=execution)
            queue.enqueue_job(job, pipeline=pipeline, at_front=True)
            pipeline.execute()
        log.info("event=job_put_back job=%s retries_left=%s", job.id, job.retries_left)

    def _beat_until(self, done: threading.Event, job, execution) -> None:
        while not done.wait(HEARTBEAT_EVERY_SECONDS):
            try:
                self.maintain_heartbeats(job, execution)
                if self.context.batches_per_write > 1 or self.context.batches_per_job > 1:
                    self.context.queue.refresh_claim(job.id)  # the batches it took along
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
        """Stop after this job, as a warm shutdown does.

        RQ's private `_stop_requested` is read (in _back_off, _pause) and set here: its public
        request_stop() is the SIGTERM handler, which would turn the next SIGTERM into a cold
        shutdown and raise StopRequested in an idle worker."""
        log.error("event=worker_stopping reason=store_config_error error=%s", error)
        self.store_config_error = error
        self._stop_requested = True


def build_worker(settings: Settings, connection: redis.Redis, store: LogStore,
                 metrics: WorkerMetrics, store_backoff: tuple[float, float] = STORE_BACKOFF) -> StoreWorker:
    queue = BatchQueue(connection, settings)
    merging = settings.cassandra_layout == "blocks" and settings.block_merge_after_seconds > 0
    context = JobContext(queue=queue, store=store, metrics=metrics,
                         batches_per_write=settings.worker_batches_per_write,
                         write_max_bytes=settings.worker_write_max_bytes,
                         batches_per_job=settings.worker_batches_per_job,
                         job_seconds=settings.job_timeout_seconds / 2,
                         merge_candidates=MergeCandidates(connection, settings.queue_name) if merging else None,
                         merge_after_seconds=settings.block_merge_after_seconds)
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
        signal_when_parent_dies()

    os.register_at_fork(after_in_child=in_child)


def run_worker(settings: Settings) -> None:
    metrics = WorkerMetrics()
    metrics_server = None
    if settings.worker_metrics_port:
        metrics_server, _ = start_http_server(settings.worker_metrics_port, registry=metrics.registry)
        log.info("event=worker_metrics_listening port=%d", settings.worker_metrics_port)
    _tie_forked_children_to(metrics_server)
    store = CassandraStore(settings)
    check_store(store)
    tune_for_service()
    try:
        worker = _work_until_stopped(settings, store, metrics)
    finally:
        store.close()
    if worker is not None and worker.store_config_error is not None:
        raise worker.store_config_error


REDIS_LOST_BACKOFF = (0.5, 10.0)  # first and longest pause before a worker follows a lost Redis


def _work_until_stopped(settings: Settings, store: CassandraStore, metrics: WorkerMetrics) -> StoreWorker | None:
    """Run RQ's worker; when its loop quits because Redis went away (RQ's `work()` leaves on any
    error, e.g. the primary killed in a failover), start a new one on a new client, which asks the
    Sentinels (REDIS_SENTINELS) for the primary again. Ends on a stop request (SIGTERM/SIGINT),
    in burst mode, or on a StoreConfigError. A job interrupted that way is taken back as any job of
    a dead worker is, once its heartbeat expires."""
    pause, worker = REDIS_LOST_BACKOFF[0], None
    while True:
        started = time.monotonic()
        try:
            worker = build_worker(settings, connect_redis(settings), store, metrics)  # RQ's names itself in Redis
            worker.work(with_scheduler=True, burst=settings.worker_burst, logging_level=settings.log_level)
        except redis.RedisError as error:  # its start or its teardown, on a Redis that is gone
            log.warning("event=worker_redis_error error=%s", describe_redis_error(error))
        if worker is not None and (settings.worker_burst or worker.stop_asked or worker.store_config_error is not None):
            return worker
        if time.monotonic() - started > 60:
            pause = REDIS_LOST_BACKOFF[0]  # it had been working: a new outage starts the back-off afresh
        log.warning("event=worker_redis_lost reconnect_in_s=%.1f", pause)
        try:
            time.sleep(pause)
        except StopRequested:  # SIGTERM while waiting: RQ's handler of the worker that quit
            return worker
        pause = min(pause * 2, REDIS_LOST_BACKOFF[1])


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
