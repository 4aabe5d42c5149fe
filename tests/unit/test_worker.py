"""The worker: a batch leaves Redis only once written; failures are retried, kept, and requeueable."""

from __future__ import annotations

import dataclasses

import fakeredis

from common.metrics import WorkerMetrics
from common.queue import PAYLOAD_KEY_PREFIX, BatchQueue
from common.records import LogRow
from common.settings import Settings
from common.store import StoreUnavailable
from workers.runner import build_worker

ROWS = [LogRow("ns", "pod", "c", 1_700_000_000 * 10**9 + i, f"line {i}") for i in range(3)]


@dataclasses.dataclass
class RecordingStore:
    failures: list[Exception] = dataclasses.field(default_factory=list)  # raised by the next writes
    poison: str | None = None  # a batch holding this line is refused, however often it is tried
    pings_down: int = 0  # pings that fail before the store is back
    written: list[LogRow] = dataclasses.field(default_factory=list)

    def write(self, rows):
        if self.failures:
            raise self.failures.pop(0)
        if any(row.log == self.poison for row in rows):
            raise ValueError("poison batch")
        self.written += rows
        return 1

    def ping(self, timeout):
        if self.pings_down:
            self.pings_down -= 1
            raise StoreUnavailable("still down")


def setup(store, **settings_changes):
    settings = Settings(job_retry_intervals=(0, 0), **settings_changes)
    redis = fakeredis.FakeRedis()
    queue = BatchQueue(redis, settings)
    worker = build_worker(settings, redis, store, WorkerMetrics())
    worker._store_backoff = (0.001, 0.001)
    return queue, worker, redis


def drain(worker):
    worker.work(burst=True, with_scheduler=False, logging_level="ERROR")


def test_a_written_batch_leaves_no_payload_and_no_job_behind():
    store = RecordingStore()
    queue, worker, redis = setup(store)
    queue.enqueue(ROWS)
    drain(worker)
    assert store.written == ROWS
    assert redis.keys(PAYLOAD_KEY_PREFIX + "*") == []
    assert queue.status().queued == 0 and queue.status().failed == 0


def test_a_failed_write_is_retried_until_it_succeeds():
    store = RecordingStore(failures=[RuntimeError("write timeout"), RuntimeError("write timeout")])
    queue, worker, _ = setup(store)
    queue.enqueue(ROWS)
    drain(worker)
    assert store.written == ROWS
    assert queue.status().failed == 0


def test_a_batch_that_keeps_failing_ends_in_the_failed_registry_with_its_payload():
    store = RecordingStore(poison="line 0")
    queue, worker, redis = setup(store)
    queue.enqueue(ROWS)
    drain(worker)
    assert store.written == []
    assert queue.status().failed == 1
    assert len(redis.keys(PAYLOAD_KEY_PREFIX + "*")) == 1


def test_requeued_failed_batches_are_written_once_the_cause_is_fixed():
    store = RecordingStore(poison="line 0")
    queue, worker, _ = setup(store)
    queue.enqueue(ROWS)
    drain(worker)
    store.poison = None
    assert queue.requeue_failed() == 1
    drain(worker)
    assert store.written == ROWS
    assert queue.status().failed == 0


def test_a_failed_batch_does_not_block_the_batches_behind_it():
    store = RecordingStore(poison="line 0")
    queue, worker, _ = setup(store)
    queue.enqueue(ROWS[:1])
    queue.enqueue(ROWS[1:])
    drain(worker)
    assert store.written == ROWS[1:]
    assert queue.status().failed == 1


def test_with_cassandra_down_the_worker_waits_for_it_before_the_next_job():
    store = RecordingStore(failures=[StoreUnavailable("no host available")], pings_down=3)
    queue, worker, _ = setup(store)
    queue.enqueue(ROWS)
    drain(worker)
    assert store.pings_down == 0  # it asked until Cassandra answered
    assert store.written == ROWS


def test_a_stored_batch_whose_job_rq_lost_is_queued_again_and_written():
    store = RecordingStore()
    queue, worker, redis = setup(store)
    job_id = queue.enqueue(ROWS)
    redis.lrem(queue.rq_queue.key, 0, job_id)  # RQ forgets the job; its payload stays
    assert queue.requeue_orphans() == [job_id]
    drain(worker)
    assert store.written == ROWS


def test_tracked_jobs_are_not_orphans():
    queue, _, _ = setup(RecordingStore())
    queue.enqueue(ROWS)
    assert queue.requeue_orphans() == []


def test_payloads_of_another_queue_are_left_alone():
    store = RecordingStore()
    queue, _, redis = setup(store)
    other = BatchQueue(redis, Settings(queue_name="another-queue"))
    job_id = other.enqueue(ROWS)
    redis.lrem(other.rq_queue.key, 0, job_id)
    assert queue.requeue_orphans() == []


def test_the_orphan_scan_reads_the_registries_once_however_long_the_backlog(monkeypatch):
    queue, _, _ = setup(RecordingStore())
    for _ in range(50):
        queue.enqueue(ROWS)
    reads = []
    original = queue._tracked_job_ids
    monkeypatch.setattr(queue, "_tracked_job_ids", lambda: reads.append(1) or original())
    assert queue.requeue_orphans() == []
    assert len(reads) == 1
