"""WORKER_BATCHES_PER_WRITE: a job writes its batch together with batches already waiting behind it.

The claimed batches leave RQ's queue for the job's claim list; they are written with it once, never
lost with a dead worker (its claim expires, the next maintenance pass queues them again), never
charged with another batch's failure, and never run around check_job. WORKER_BATCHES_PER_JOB: then
the job goes on claiming and writing the batches that wait, within its bounds."""

from __future__ import annotations

import dataclasses

import pytest

from common.queue import CLAIM_TTL_SECONDS, PAYLOAD_KEY_PREFIX, decoded_size
from common.redis_keys import CLAIM_KEY_PREFIX
from common.records import LogRow
from common.store import StoreUnavailable
from tests.unit.test_job_refusal import MARKER, MARKS, enqueue_pickled, failed_ids, no_marks  # noqa: F401
from tests.unit.test_worker import RecordingStore, drain, setup


def logs(rows) -> list[str]:
    return sorted(row.log for row in rows)


def batch(n: int, size: int = 3) -> list[LogRow]:
    return [LogRow("ns", f"pod-{n}", "c", 1_700_000_000 * 10**9 + i, f"batch {n} line {i}") for i in range(size)]


@dataclasses.dataclass
class CountingStore(RecordingStore):
    writes: list[int] = dataclasses.field(default_factory=list)  # rows per successful write call

    def write(self, rows):
        result = super().write(rows)
        self.writes.append(len(rows))
        return result


def test_batches_waiting_behind_a_job_are_written_with_it_in_one_store_write():
    store = CountingStore()
    queue, worker, redis = setup(store, worker_batches_per_write=8)
    for n in range(3):
        queue.enqueue(batch(n))
    drain(worker)
    assert store.writes == [9]
    assert logs(store.written) == logs(batch(0) + batch(1) + batch(2))
    assert redis.keys(PAYLOAD_KEY_PREFIX + "*") == [] and redis.keys(CLAIM_KEY_PREFIX + "*") == []
    assert redis.keys("rq:job:*") == []
    assert queue.status().queued == 0 and queue.status().failed == 0


@pytest.mark.parametrize("per_write, rows_per_write", [(2, [6, 6, 3]), (1, [3, 3, 3])])
def test_a_write_takes_at_most_batches_per_write_batches(per_write, rows_per_write):
    store = CountingStore()
    queue, worker, _ = setup(store, worker_batches_per_write=per_write)
    for n in range(5 if per_write > 1 else 3):
        queue.enqueue(batch(n))
    drain(worker)
    assert store.writes == rows_per_write


def test_each_batch_of_a_joint_write_is_counted_in_the_metrics():
    queue, worker, _ = setup(CountingStore(), worker_batches_per_write=8)
    for n in range(3):
        queue.enqueue(batch(n))
    drain(worker)
    metrics = worker.context.metrics
    assert metrics.batches.labels("written")._value.get() == 3
    assert metrics.rows_written._value.get() == 9


def test_a_claimed_batch_that_is_refused_fails_alone_and_the_jobs_own_batch_is_written():
    store = CountingStore(poison="batch 1 line 0")
    queue, worker, _ = setup(store, worker_batches_per_write=8)
    good_id = queue.enqueue(batch(0))
    poisoned_id = queue.enqueue(batch(1))
    drain(worker)
    assert logs(store.written) == logs(batch(0))
    assert failed_ids(queue) == [poisoned_id] and good_id not in failed_ids(queue)


def test_with_cassandra_down_during_a_joint_write_every_batch_is_written_once_it_is_back():
    store = CountingStore(failures=[StoreUnavailable("no host available")], pings_down=1)
    queue, worker, redis = setup(store, worker_batches_per_write=8)
    for n in range(3):
        queue.enqueue(batch(n))
    drain(worker)
    assert logs(store.written) == logs(batch(0) + batch(1) + batch(2))
    assert queue.status().failed == 0 and redis.keys(CLAIM_KEY_PREFIX + "*") == []


def test_a_job_refused_by_check_job_is_not_claimed_but_refused_by_rq_as_ever():
    store = CountingStore()
    queue, worker, redis = setup(store, worker_batches_per_write=8)
    queue.enqueue(batch(0))
    foreign = enqueue_pickled(redis, queue.rq_queue.name, MARKER, ("rm -rf /",))
    queue.enqueue(batch(2))
    drain(worker)
    assert MARKS == []
    assert failed_ids(queue) == [foreign]
    assert logs(store.written) == logs(batch(0) + batch(2))


def test_batches_claimed_by_a_live_job_are_not_orphans():
    queue, _, _ = setup(RecordingStore(), worker_batches_per_write=8)
    waiting = [queue.enqueue(batch(n)) for n in range(2)]
    claimed = queue.claim_queued("owner-job", 4)
    assert [c.job_id for c in claimed] == waiting and claimed[1].batch.rows == batch(1)
    assert queue.requeue_orphans() == []


def test_batches_claimed_by_a_dead_worker_are_queued_again_once_its_claim_expired_and_written():
    store = CountingStore()
    queue, worker, redis = setup(store, worker_batches_per_write=8)
    ids = [queue.enqueue(batch(n)) for n in range(3)]
    claimed = queue.claim_queued("killed-job", 8)  # the worker then dies: nobody refreshes the claim
    assert [c.job_id for c in claimed] == ids
    assert 0 < redis.ttl(CLAIM_KEY_PREFIX + f"{queue.rq_queue.name}:killed-job") <= CLAIM_TTL_SECONDS
    redis.delete(CLAIM_KEY_PREFIX + f"{queue.rq_queue.name}:killed-job")  # what its TTL does
    assert sorted(queue.requeue_orphans()) == sorted(ids)
    drain(worker)
    assert logs(store.written) == logs(batch(0) + batch(1) + batch(2))


def test_released_batches_go_back_to_the_head_of_the_queue_in_their_order():
    queue, _, _ = setup(RecordingStore(), worker_batches_per_write=8)
    ids = [queue.enqueue(batch(n)) for n in range(4)]
    claimed = queue.claim_queued("owner-job", 2)
    queue.release_claimed("owner-job", claimed)
    assert queue.rq_queue.get_job_ids() == ids


def test_a_claimed_batch_already_written_is_finished_without_being_written_again():
    store = CountingStore()
    queue, worker, redis = setup(store, worker_batches_per_write=8)
    queue.enqueue(batch(0))
    done = queue.enqueue(batch(1))
    redis.delete(f"{PAYLOAD_KEY_PREFIX}{queue.rq_queue.name}:{done}")  # written, then queued again
    drain(worker)
    assert store.writes == [3]
    assert redis.keys("rq:job:*") == [] and queue.status().queued == 0


# --- WORKER_WRITE_MAX_BYTES: what a write claims is bounded in bytes too ---

def queued_size(queue, job_id: str) -> int:
    return decoded_size(queue._redis.get(f"{PAYLOAD_KEY_PREFIX}{queue.rq_queue.name}:{job_id}"))


def test_a_claim_stops_at_the_byte_bound_and_leaves_the_rest_queued_in_order():
    queue, _, _ = setup(RecordingStore())
    ids = [queue.enqueue(batch(n, size=50)) for n in range(5)]
    two = queued_size(queue, ids[0]) + queued_size(queue, ids[1])
    claimed = queue.claim_queued("owner-job", 5, max_bytes=two)
    assert [c.job_id for c in claimed] == ids[:2]
    assert queue.rq_queue.get_job_ids() == ids[2:]


def test_a_claim_takes_its_first_batch_even_when_it_alone_is_over_the_byte_bound():
    queue, _, _ = setup(RecordingStore())
    ids = [queue.enqueue(batch(n, size=50)) for n in range(2)]
    claimed = queue.claim_queued("owner-job", 2, max_bytes=1)
    assert [c.job_id for c in claimed] == ids[:1] and claimed[0].batch.rows == batch(0, size=50)
    assert queue.rq_queue.get_job_ids() == ids[1:]


def test_writes_bounded_in_bytes_still_write_every_batch_once():
    probe, _, _ = setup(RecordingStore())
    two_batches = 2 * queued_size(probe, probe.enqueue(batch(0, size=50)))
    store = CountingStore()
    queue, worker, redis = setup(store, worker_batches_per_write=8, worker_write_max_bytes=two_batches)
    for n in range(5):
        queue.enqueue(batch(n, size=50))
    drain(worker)
    assert store.writes == [150, 100]  # the job's own and 2 claimed, then the 2 left
    assert logs(store.written) == logs([row for n in range(5) for row in batch(n, size=50)])
    assert redis.keys(PAYLOAD_KEY_PREFIX + "*") == [] and queue.status().queued == 0

def test_a_refused_job_and_jobs_past_the_byte_bound_go_back_in_the_order_they_were_queued():
    queue, _, redis = setup(RecordingStore())
    first = queue.enqueue(batch(0, size=50))
    foreign = enqueue_pickled(redis, queue.rq_queue.name, MARKER, ("rm -rf /",))
    rest = [queue.enqueue(batch(n, size=50)) for n in range(2, 4)]
    claimed = queue.claim_queued("owner-job", 4, max_bytes=1)
    assert [c.job_id for c in claimed] == [first]
    assert queue.rq_queue.get_job_ids() == [foreign, *rest]


# --- WORKER_BATCHES_PER_JOB: a job goes on writing the batches that wait ---

def jobs_run(worker, redis) -> int:
    return int(redis.hget(worker.key, "successful_job_count") or 0)


@pytest.mark.parametrize("per_job, rows_per_write, jobs", [(64, [6, 6, 3], 1), (3, [6, 3, 6], 2)])
def test_a_job_goes_on_writing_the_batches_that_wait_up_to_batches_per_job(per_job, rows_per_write, jobs):
    store = CountingStore()
    queue, worker, redis = setup(store, worker_batches_per_write=2, worker_batches_per_job=per_job)
    for n in range(5):
        queue.enqueue(batch(n))
    drain(worker)
    assert store.writes == rows_per_write and jobs_run(worker, redis) == jobs
    assert logs(store.written) == logs([row for n in range(5) for row in batch(n)])
    assert redis.keys(PAYLOAD_KEY_PREFIX + "*") == [] and redis.keys(CLAIM_KEY_PREFIX + "*") == []
    assert redis.keys("rq:job:*") == [] and queue.status().queued == 0


def test_a_worker_asked_to_stop_writes_no_batch_beyond_its_job_s_first_write():
    store = CountingStore()
    queue, worker, redis = setup(store, worker_batches_per_write=2, worker_batches_per_job=64)
    for n in range(5):
        queue.enqueue(batch(n))
    worker.context.stopping.set()  # what a SIGTERM does (handle_warm_shutdown_request)
    drain(worker)
    assert store.writes == [6, 6, 3] and jobs_run(worker, redis) == 3


def test_a_warm_shutdown_request_tells_the_running_job_to_stop_claiming():
    _, worker, _ = setup(CountingStore())
    worker.handle_warm_shutdown_request()
    assert worker.context.stopping.is_set()


def test_a_later_write_refused_puts_its_batches_back_and_each_then_runs_as_its_own_job():
    store = CountingStore(poison="batch 2 line 0")
    queue, worker, _ = setup(store, worker_batches_per_write=2, worker_batches_per_job=64)
    ids = [queue.enqueue(batch(n)) for n in range(4)]
    drain(worker)
    assert logs(store.written) == logs(batch(0) + batch(1) + batch(3))
    assert failed_ids(queue) == [ids[2]]


@dataclasses.dataclass
class DownForTheSecondWrite(CountingStore):
    calls: int = 0

    def write(self, rows):
        self.calls += 1
        if self.calls == 2:
            raise StoreUnavailable("no host available")
        return super().write(rows)


def test_with_cassandra_down_during_a_later_write_its_batches_are_written_by_the_next_job():
    store = DownForTheSecondWrite()
    queue, worker, redis = setup(store, worker_batches_per_write=2, worker_batches_per_job=64)
    for n in range(4):
        queue.enqueue(batch(n))
    drain(worker)
    assert store.writes == [6, 6]
    assert logs(store.written) == logs([row for n in range(4) for row in batch(n)])
    assert queue.status().failed == 0 and redis.keys(CLAIM_KEY_PREFIX + "*") == []
