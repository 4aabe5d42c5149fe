"""What this project relies on in RQ: an RQ upgrade that changes any of it fails here, by name.

pyproject.toml allows the tested minor only (rq>=3.0,<3.1). Before widening it, make these pass
against the new release: each override still matches RQ's method, each call still takes the
parameters passed, the private names still exist, and the hooks are still called as
workers/runner.py expects.
"""

from __future__ import annotations

import inspect
import time
import types

import fakeredis
import pytest
import rq
import rq.utils
from rq import Queue, Retry, Worker
from rq.executions import Execution, ExecutionRegistry
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker

import workers.runner as runner
from common.metrics import WorkerMetrics
from common.queue import BatchJob, BatchQueue, RefusedJob
from common.settings import Settings
from common.store import StoreUnavailable
from tests.unit.test_worker import ROWS, RecordingStore
from tests.waiting import wait_for
from workers.jobs import JobContext
from workers.runner import ContextJob, LiveExecutionRegistry, StoreWorker

TESTED_MINOR = (3, 0)


def parameters(function) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


def test_the_installed_rq_is_the_minor_this_code_was_checked_against():
    installed = tuple(int(part) for part in rq.__version__.split(".")[:2])
    assert installed == TESTED_MINOR, (
        f"RQ {rq.__version__} is installed; workers/runner.py was checked against RQ "
        f"{'.'.join(map(str, TESTED_MINOR))}: make this module pass, then move TESTED_MINOR and the pin")


OVERRIDES = [
    (SimpleWorker, StoreWorker, "heartbeat"),
    (SimpleWorker, StoreWorker, "run_maintenance_tasks"),
    (SimpleWorker, StoreWorker, "get_heartbeat_ttl"),
    (SimpleWorker, StoreWorker, "perform_job"),
    (SimpleWorker, StoreWorker, "handle_job_failure"),
    (ExecutionRegistry, LiveExecutionRegistry, "get_execution_ids"),
    (ExecutionRegistry, LiveExecutionRegistry, "get_executions"),
    (Job, BatchJob, "send_webhooks"),
]


@pytest.mark.parametrize(("rq_class", "ours", "name"), OVERRIDES, ids=[f"{c.__name__}.{n}" for c, _, n in OVERRIDES])
def test_each_overridden_method_still_exists_with_the_parameters_we_take(rq_class, ours, name):
    assert callable(getattr(rq_class, name, None)), f"RQ's {rq_class.__name__}.{name} is gone: {ours.__name__} overrides it"
    theirs, mine = parameters(getattr(rq_class, name)), parameters(getattr(ours, name))
    assert theirs == mine, f"RQ's {rq_class.__name__}.{name} now takes {theirs}; {ours.__name__}'s takes {mine}"


PROPERTIES = [(Job, "func"), (Job, "success_callback"), (Job, "failure_callback"), (Job, "stopped_callback"),
              (Job, "execution_registry")]


@pytest.mark.parametrize(("rq_class", "name"), PROPERTIES, ids=[n for _, n in PROPERTIES])
def test_each_overridden_property_is_still_a_property(rq_class, name):
    assert isinstance(inspect.getattr_static(rq_class, name, None), property), (
        f"RQ's {rq_class.__name__}.{name} is no longer a property: ContextJob/BatchJob override it as one")


CALLS = [
    (SimpleWorker.__init__, {"queues", "connection", "job_class", "serializer", "maintenance_interval", "worker_ttl"}),
    (SimpleWorker.work, {"burst", "with_scheduler", "logging_level"}),
    (SimpleWorker.maintain_heartbeats, {"job", "execution"}),
    (SimpleWorker.cleanup_execution, {"job", "pipeline", "execution"}),
    (SimpleWorker.push_exc_handler, {"handler_func"}),
    (Worker.count, {"queue"}),
    (Queue.__init__, {"name", "connection", "job_class", "serializer"}),
    (Queue.enqueue_call, {"func", "args", "job_id", "timeout", "result_ttl", "failure_ttl", "retry", "pipeline"}),
    (Queue.enqueue_job, {"job", "pipeline", "at_front"}),
    (Retry.__init__, {"max", "interval"}),
    (Execution.__init__, {"id", "job_id", "connection"}),
    (Execution.restore, {"data"}),
    (FailedJobRegistry.requeue, {"job_or_id"}),
    (IntermediateQueue.__init__, {"queue_key", "connection"}),
]


@pytest.mark.parametrize(("function", "passed"), CALLS, ids=[f.__qualname__ for f, _ in CALLS])
def test_each_rq_call_still_takes_the_parameters_we_pass(function, passed):
    missing = passed - set(parameters(function))
    assert not missing, f"RQ's {function.__qualname__} no longer takes {sorted(missing)}"


def test_the_private_and_undocumented_names_we_use_still_exist():
    worker = SimpleWorker(["q"], connection=fakeredis.FakeRedis())
    assert worker._stop_requested is False, "RQ's worker no longer has _stop_requested (StoreWorker._stop_on)"
    for name in ("current_timestamp", "as_text"):  # LiveExecutionRegistry
        assert callable(getattr(rq.utils, name, None)), f"rq.utils.{name} is gone (LiveExecutionRegistry)"
    registry = ExecutionRegistry(job_id="j", connection=worker.connection)
    assert (registry.job_id, registry.connection) == ("j", worker.connection), "ExecutionRegistry's attributes moved"
    assert isinstance(registry.key, str), "ExecutionRegistry.key moved"
    assert isinstance(Execution(id="e", job_id="j", connection=worker.connection).key, str), "Execution.key moved"


def build(store, redis=None):
    settings = Settings(job_retry_intervals=(0, 0))
    redis = redis or fakeredis.FakeRedis()
    queue = BatchQueue(redis, settings)
    worker = runner.build_worker(settings, redis, store, WorkerMetrics())
    worker._store_backoff = (0.001, 0.001)
    return queue, worker, redis


def test_the_worker_reads_jobs_with_our_serializer_into_our_job_class():
    queue, worker, _ = build(RecordingStore())
    assert worker.serializer is JSONSerializer, f"the worker's serializer is {worker.serializer}, not JSON"
    assert worker.job_class is ContextJob, f"the worker's job_class is {worker.job_class}, not ContextJob"
    seen = []
    original = worker.perform_job
    worker.perform_job = lambda job, q, execution: seen.append(type(job)) or original(job, q, execution)
    queue.enqueue(ROWS)
    worker.work(burst=True, with_scheduler=False, logging_level="ERROR")
    assert seen and set(seen) == {ContextJob}, f"RQ dequeued {seen}: Worker(job_class=) no longer decides the job class"


def called_with(*args, **kwargs):
    CALLED.append((args, kwargs))


CALLED: list = []


def test_rq_runs_a_job_through_its_func_property_with_the_job_args():
    CALLED.clear()
    checked = []
    job = ContextJob.create(f"{__name__}.called_with", args=("key",), connection=fakeredis.FakeRedis(),
                            serializer=JSONSerializer)
    job.context = types.SimpleNamespace(queue=types.SimpleNamespace(check_job=checked.append))
    job.perform()
    assert checked == [job], "Job.perform() no longer reads Job.func: check_job was not run"
    assert CALLED == [((job.context, "key"), {})], f"Job.perform() no longer calls Job.func(*args): {CALLED}"


def test_a_refused_job_raises_from_func_before_its_function_runs():
    CALLED.clear()
    job = ContextJob.create(f"{__name__}.called_with", args=("key",), connection=fakeredis.FakeRedis(),
                            serializer=JSONSerializer)

    def refuse(job):
        raise RefusedJob("no")

    job.context = types.SimpleNamespace(queue=types.SimpleNamespace(check_job=refuse))
    with pytest.raises(RefusedJob):
        job.perform()
    assert CALLED == []


def test_an_exception_reaches_our_handlers_then_handle_job_failure_with_the_same_job_and_keywords():
    calls = []

    class Recorder(StoreWorker):
        def handle_job_failure(self, *args, **kwargs):
            job = kwargs.get("job", args[0] if args else None)
            calls.append(("handle_job_failure", len(args), sorted(kwargs), job.store_was_unavailable))
            super().handle_job_failure(*args, **kwargs)

    store = RecordingStore(failures=[StoreUnavailable("down")])
    redis = fakeredis.FakeRedis()
    queue = BatchQueue(redis, Settings(job_retry_intervals=(0, 0)))
    worker = Recorder([queue.rq_queue], connection=redis, store_backoff=(0.001, 0.001),
                      context=JobContext(queue=queue, store=store, metrics=WorkerMetrics()))
    worker.push_exc_handler(lambda job, exc_type, exc_value, traceback: calls.append(("handler", exc_type)))
    queue.enqueue(ROWS)
    worker.work(burst=True, with_scheduler=False, logging_level="ERROR")
    assert calls[0] == ("handler", StoreUnavailable), (
        f"RQ called {calls}: expected the exception handlers first, with the job's StoreUnavailable")
    assert calls[1] == ("handle_job_failure", 0,
                        ["exc_string", "execution", "job", "queue", "started_job_registry"], True), (
        f"RQ now calls handle_job_failure as {calls[1]}; StoreWorker expects keywords job, queue, "
        "started_job_registry, exc_string, execution, on the job its exception handler marked")
    assert store.written == ROWS


def test_queue_enqueue_job_joins_a_multi_exec_and_puts_the_job_first():
    redis = fakeredis.FakeRedis()
    queue = Queue("q", connection=redis, job_class=BatchJob, serializer=JSONSerializer)
    queue.enqueue_call(f"{__name__}.called_with", args=("a",), job_id="first")
    job = queue.create_job(f"{__name__}.called_with", args=("b",), job_id="again")
    with redis.pipeline() as pipeline:
        pipeline.multi()
        pipeline.set("other-write", "1")
        queue.enqueue_job(job, pipeline=pipeline, at_front=True)
        pipeline.execute()
    assert queue.get_job_ids() == ["again", "first"], "Queue.enqueue_job(at_front=True) in a MULTI changed"


def test_a_running_job_is_kept_alive_by_our_heartbeat_ttl(monkeypatch):
    monkeypatch.setattr(runner, "HEARTBEAT_EVERY_SECONDS", 0.05)
    store = RecordingStore()
    queue, worker, redis = build(store)
    started = StartedJobRegistry(queue=queue.rq_queue)
    scores = []

    def write(rows):
        scores.append(redis.zrange(started.key, 0, -1, withscores=True)[0][1])
        wait_for(lambda: redis.zrange(started.key, 0, -1, withscores=True)[0][1] > scores[0], timeout=5,
                 what="the beating thread to extend the job's started-registry entry")
        scores.append(redis.zrange(started.key, 0, -1, withscores=True)[0][1])
        return 1

    store.write = write
    queue.enqueue(ROWS)
    worker.work(burst=True, with_scheduler=False, logging_level="ERROR")
    for score in scores:
        assert score - time.time() <= runner.HEARTBEAT_TTL_SECONDS + 1, (
            "RQ no longer takes the started-registry expiry from get_heartbeat_ttl()")


def test_rq_own_clean_up_hands_handle_job_failure_a_job_of_the_queues_class(monkeypatch):
    """A job taken but never started (its worker died) is failed by RQ's intermediate-queue clean-up
    through the worker's handle_job_failure: a job of the queue's class, which no worker ran."""
    calls = []

    class Recorder(SimpleWorker):
        def handle_job_failure(self, job, queue, started_job_registry=None, exc_string="", execution=None):
            calls.append((type(job), execution))

    redis = fakeredis.FakeRedis()
    queue = Queue("q", connection=redis, job_class=BatchJob, serializer=JSONSerializer)
    queue.enqueue_call(f"{__name__}.called_with", args=("a",), job_id="taken")
    redis.lmove(queue.key, queue.intermediate_queue_key, "RIGHT", "LEFT")  # as RQ's dequeue does
    monkeypatch.setattr(IntermediateQueue, "should_be_cleaned_up", lambda self, job_id: True)
    worker = Recorder([queue], connection=redis, job_class=ContextJob, serializer=JSONSerializer)
    queue.intermediate_queue.cleanup(worker, queue)  # first seen
    queue.intermediate_queue.cleanup(worker, queue)
    assert calls == [(BatchJob, None)], (
        f"RQ's intermediate-queue clean-up now calls handle_job_failure as {calls}: StoreWorker's must tell "
        "the jobs it ran (ContextJob) from these")
