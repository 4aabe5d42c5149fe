"""Nothing executable in the queue: a worker runs write_batch on its own payload key, and nothing else.

Anyone who can write to Redis can write a job hash. A pickled one (RQ's default format, and this
project's before) is refused without being unpickled; a JSON one naming any other function or other
arguments is refused before anything is imported; callbacks named in a hash are never run. A refused
job ends in the failed registry; a batch stored under its id is queued again as a new, safe job.
"""

from __future__ import annotations

import uuid

import pytest
from rq import Queue, Retry
from rq.registry import FailedJobRegistry

from common.queue import JOB_FUNCTION, PAYLOAD_KEY_PREFIX, encode_payload
from common.timestamps import now_ns
from tests.unit.test_worker import ROWS, RecordingStore, drain
from tests.unit.test_worker import setup as worker_setup

MARKER = f"{__name__}.leave_a_mark"
MARKS: list[tuple] = []


def leave_a_mark(*args, **kwargs) -> None:
    """Stands for os.system & co: if it ever runs, the test sees it."""
    MARKS.append(args)


@pytest.fixture(autouse=True)
def no_marks():
    MARKS.clear()
    yield
    MARKS.clear()


def payload_key(queue_name: str, job_id: str) -> str:
    return f"{PAYLOAD_KEY_PREFIX}{queue_name}:{job_id}"


def enqueue_pickled(redis, queue_name: str, func: str, args: tuple, job_id: str | None = None) -> str:
    """A job as the previous version (RQ's default pickle serializer) queued it."""
    job_id = job_id or uuid.uuid4().hex
    Queue(queue_name, connection=redis).enqueue_call(
        func, args=args, job_id=job_id, result_ttl=0, retry=Retry(max=2, interval=[0, 0]))
    return job_id


def enqueue_legacy_batch(redis, queue_name: str, rows) -> str:
    """A batch acknowledged by the previous version: its payload, and a pickled job for it."""
    job_id = uuid.uuid4().hex
    redis.set(payload_key(queue_name, job_id), encode_payload(rows, now_ns()))
    return enqueue_pickled(redis, queue_name, JOB_FUNCTION, (payload_key(queue_name, job_id),), job_id)


def failed_ids(queue) -> list[str]:
    return FailedJobRegistry(queue=queue.rq_queue).get_job_ids()


def test_a_pickled_job_is_refused_unread_and_ends_in_the_failed_registry():
    queue, worker, redis = worker_setup(RecordingStore())
    job_id = enqueue_pickled(redis, queue.rq_queue.name, MARKER, ("rm -rf /",))
    drain(worker)
    assert MARKS == []
    assert failed_ids(queue) == [job_id]


def test_a_job_in_the_queues_own_format_naming_another_function_is_refused():
    queue, worker, _ = worker_setup(RecordingStore())
    job = queue.rq_queue.enqueue_call(MARKER, args=("rm -rf /",))
    drain(worker)
    assert MARKS == []
    assert failed_ids(queue) == [job.id]


def test_write_batch_pointed_at_another_queues_payload_is_refused_and_leaves_it_alone():
    store = RecordingStore()
    queue, worker, redis = worker_setup(store)
    foreign = payload_key("another-queue", "abc")
    redis.set(foreign, encode_payload(ROWS, now_ns()))
    job = queue.rq_queue.enqueue_call(JOB_FUNCTION, args=(foreign,))
    drain(worker)
    assert store.written == []
    assert redis.exists(foreign)
    assert failed_ids(queue) == [job.id]


@pytest.mark.parametrize("args, kwargs", [
    ((), {}),
    (("{key}", "extra"), {}),
    (("{key}",), {"payload_key": "{key}"}),
    ((["{key}"],), {}),
], ids=["no argument", "two arguments", "keyword arguments", "a list, not a string"])
def test_write_batch_with_anything_but_its_own_payload_key_is_refused(args, kwargs):
    store = RecordingStore()
    queue, worker, redis = worker_setup(store)
    job_id = uuid.uuid4().hex
    key = payload_key(queue.rq_queue.name, job_id)

    def fill(value):
        return [fill(v) for v in value] if isinstance(value, list) else value.format(key=key)

    queue.rq_queue.enqueue_call(JOB_FUNCTION, args=tuple(fill(a) for a in args),
                                kwargs={k: fill(v) for k, v in kwargs.items()}, job_id=job_id)
    drain(worker)
    assert store.written == []
    assert failed_ids(queue) == [job_id]


def test_callbacks_named_in_a_job_hash_are_never_run():
    store = RecordingStore(poison="line 0")
    queue, worker, redis = worker_setup(store)
    written = queue.enqueue(ROWS[1:])
    failing = queue.enqueue(ROWS[:1])
    for job_id in (written, failing):
        redis.hset(f"rq:job:{job_id}", mapping={
            "success_callback_name": MARKER, "failure_callback_name": MARKER})
    drain(worker)
    assert store.written == ROWS[1:]
    assert MARKS == []


def test_a_pickled_job_of_the_previous_version_is_refused_and_its_batch_still_written():
    store = RecordingStore()
    queue, worker, redis = worker_setup(store)
    job_id = enqueue_legacy_batch(redis, queue.rq_queue.name, ROWS)
    drain(worker)
    assert failed_ids(queue) == [job_id]  # the pickled job itself was not run...
    assert store.written == ROWS  # ...its batch was, by a new job
    assert queue.unwritten_batches() == 0


def test_a_refused_job_is_not_retried():
    queue, worker, redis = worker_setup(RecordingStore())
    job_id = enqueue_pickled(redis, queue.rq_queue.name, MARKER, ())
    drain(worker)
    assert queue.rq_queue.fetch_job(job_id).retries_left == 0
    assert queue.rq_queue.count == 0
