"""The worker: a batch leaves Redis only once written; failures are retried, kept, and requeueable."""

from __future__ import annotations

import collections
import dataclasses

import fakeredis
import pytest
from cassandra import (ConsistencyLevel, InvalidRequest, OperationTimedOut, Unavailable, WriteFailure,
                       WriteTimeout, WriteType)
from cassandra.cluster import NoHostAvailable
from cassandra.protocol import OverloadedErrorMessage
from rq.job import Job
from rq.registry import StartedJobRegistry

from common.metrics import WorkerMetrics
from common.queue import PAYLOAD_KEY_PREFIX, BatchQueue
from common.records import LogRow
from common.settings import Settings
from common.store import StoreConfigError, StoreUnavailable
from tests.unit.fake_cassandra import FakeCassandra, offline_store
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

    def write_batches(self, batches):
        rows = [row for batch in batches for row in batch]
        self.write(rows)
        return collections.Counter((row.namespace, row.pod_name, row.container_name, 0) for row in rows)

    def ping(self, timeout):
        if self.pings_down:
            self.pings_down -= 1
            raise StoreUnavailable("still down")


def setup(store, *, store_backoff=(0.001, 0.001), **settings_changes):  # pauses too short to wait on
    settings = Settings(job_retry_intervals=(0, 0), **settings_changes)
    redis = fakeredis.FakeRedis()
    queue = BatchQueue(redis, settings)
    worker = build_worker(settings, redis, store, WorkerMetrics(), store_backoff=store_backoff)
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


def _die_between_started_and_marked(redis, *, expired: bool):
    """What a worker SIGKILLed right after RQ's prepare_execution leaves: the job listed as started
    (and in the intermediate queue) but still QUEUED; with `expired`, its heartbeat TTL has run out."""
    worker = build_worker(Settings(job_retry_intervals=(0, 0)), redis, RecordingStore(), WorkerMetrics())
    job, _ = worker.dequeue_job_and_maintain_ttl(timeout=1)
    execution = worker.prepare_execution(job)
    started = StartedJobRegistry(queue=worker.queues[0])
    if expired:
        redis.zadd(started.key, {execution.composite_key: 1})
    return job.id, started


def test_a_job_whose_worker_died_before_marking_it_started_is_queued_again_once_its_heartbeat_expired():
    store = RecordingStore()
    queue, worker, redis = setup(store)
    queue.enqueue(ROWS)
    job_id, started = _die_between_started_and_marked(redis, expired=True)
    assert queue.requeue_stranded() == [job_id]
    assert started.get_job_ids(cleanup=False) == []
    drain(worker)
    assert store.written == ROWS
    assert queue.unwritten_batches() == 0 and queue.status().failed == 0


def test_a_started_listing_whose_heartbeat_is_still_alive_is_not_stranded():
    queue, _, redis = setup(RecordingStore())
    queue.enqueue(ROWS)
    _die_between_started_and_marked(redis, expired=False)
    assert queue.requeue_stranded() == []


def test_an_abandoned_started_job_is_left_to_rqs_own_retry():
    queue, worker, redis = setup(RecordingStore())
    queue.enqueue(ROWS)
    job_id, started = _die_between_started_and_marked(redis, expired=True)
    worker.prepare_job_execution(Job.fetch(job_id, connection=redis, serializer=queue.rq_queue.serializer))
    assert queue.requeue_stranded() == []


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


# --- failures that are not outages: each error class injected into a real CassandraStore ---

LABELLED = [LogRow("ns", "pod", "c", 1_700_000_000 * 10**9 + i, f"line {i}", host="node-1",
                   labels={"app": "web", "team": "logs"}) for i in range(10)]
WRITTEN = sorted((row.ts_ns, row.log) for row in LABELLED)

TRANSIENT_FAULTS = {
    "unavailable": Unavailable("Cannot achieve consistency level QUORUM", consistency=ConsistencyLevel.QUORUM,
                               required_replicas=2, alive_replicas=1),
    "write timeout": WriteTimeout("Operation timed out - received only 0 responses.",
                                  consistency=ConsistencyLevel.ONE, required_responses=1, received_responses=0,
                                  write_type=WriteType.UNLOGGED_BATCH),
    "write failure": WriteFailure("Operation failed - received 0 responses and 1 failures",
                                  consistency=ConsistencyLevel.ONE, required_responses=1, received_responses=0,
                                  failures=1, write_type=WriteType.UNLOGGED_BATCH),
    "overloaded": OverloadedErrorMessage(0x1001, "Server is in overloaded state", None),
    # what the driver's default retry policy turns an overloaded (or unavailable) answer into
    "overloaded, every host tried": NoHostAvailable("Unable to complete the operation against any hosts", {
        "127.0.0.1:9042": OverloadedErrorMessage(0x1001, "Server is in overloaded state", None)}),
    "client timeout": OperationTimedOut("errors={}, last_host=127.0.0.1:9042"),
    "down": NoHostAvailable("Unable to connect to any servers", {
        "127.0.0.1:9042": ConnectionRefusedError(111, "Connection refused")}),
}


@pytest.mark.parametrize("fault", TRANSIENT_FAULTS.values(), ids=TRANSIENT_FAULTS.keys())
def test_a_transient_write_error_spends_no_retry_and_the_batch_is_written_once_it_clears(monkeypatch, fault):
    cassandra = FakeCassandra(faults=[fault] * 5)  # more failed attempts than the job's 2 retries
    queue, worker, redis = setup(offline_store(Settings(), cassandra, monkeypatch), store_backoff=(1.0, 10.0))
    pauses = []
    monkeypatch.setattr(worker, "_pause", pauses.append, raising=False)
    queue.enqueue(LABELLED)
    drain(worker)
    assert sorted(cassandra.written) == WRITTEN
    assert queue.status().failed == 0 and queue.status().queued == 0
    assert redis.keys(PAYLOAD_KEY_PREFIX + "*") == []
    assert pauses == [1.0, 2.0, 4.0, 8.0, 10.0]  # backed off between attempts, the longest pause capped


TOO_LARGE_ANSWERS = {
    "message": "CQL Message of size 17000135 bytes exceeds allowed maximum of 16777216 bytes",
    "mutation": "Mutation of 17000135 bytes is too large for the maximum size of 16777216",
    "batch": "Batch too large",
}


@pytest.mark.parametrize("answer", TOO_LARGE_ANSWERS.values(), ids=TOO_LARGE_ANSWERS.keys())
def test_a_batch_too_large_for_cassandra_is_split_and_every_row_written(monkeypatch, answer):
    cassandra = FakeCassandra(max_rows_per_request=3, too_large_message=answer)
    queue, worker, _ = setup(offline_store(Settings(), cassandra, monkeypatch))
    queue.enqueue(LABELLED)
    drain(worker)
    assert sorted(cassandra.written) == WRITTEN
    assert max(cassandra.requests) <= 3
    assert queue.status().failed == 0


def test_a_row_too_large_even_alone_goes_to_the_failed_registry_at_once_saying_so(monkeypatch):
    cassandra = FakeCassandra(too_large_lines={"line 4"})
    queue, worker, redis = setup(offline_store(Settings(), cassandra, monkeypatch))
    job_id = queue.enqueue(LABELLED)
    drain(worker)
    assert queue.status().failed == 1
    assert len(redis.keys(PAYLOAD_KEY_PREFIX + "*")) == 1  # kept for an operator
    alone = [request for request in cassandra.refused if len(request) == 1]
    assert alone == [[(LABELLED[4].ts_ns, "line 4")]]  # split down to the row, tried alone once: no retry
    assert sorted(cassandra.written) == [row for row in WRITTEN if row[1] != "line 4"]
    reason = Job.fetch(job_id, connection=redis).latest_result().exc_string
    assert "can never be written" in reason and "too large" in reason


def test_a_write_cassandra_refuses_for_good_spends_its_retries_then_is_kept_as_failed(monkeypatch):
    refusal = InvalidRequest('Error from server: code=2200 [Invalid query] message="unconfigured table log_lines"')
    cassandra = FakeCassandra(faults=[refusal] * 10)
    queue, worker, redis = setup(offline_store(Settings(), cassandra, monkeypatch))
    pauses = []
    monkeypatch.setattr(worker, "_pause", pauses.append, raising=False)
    queue.enqueue(LABELLED)
    drain(worker)
    assert len(cassandra.faults) == 10 - 3  # the first attempt and both retries
    assert queue.status().failed == 1
    assert len(redis.keys(PAYLOAD_KEY_PREFIX + "*")) == 1
    assert pauses == []  # not an outage: no back-off


def test_settings_that_disagree_with_the_schema_stop_the_worker_without_spending_the_batch():
    error = StoreConfigError("keyspace k stores logs in 86400-second buckets; set CASSANDRA_BUCKET_SECONDS=86400")
    store = RecordingStore(failures=[error])
    queue, worker, _ = setup(store)
    queue.enqueue(ROWS)
    queue.enqueue(ROWS)
    drain(worker)
    assert worker.store_config_error is error
    assert store.written == []
    assert queue.status().queued == 2 and queue.status().failed == 0


def test_a_job_rq_itself_fails_is_retried_without_crashing_the_worker():
    """RQ's own clean-up (a job stuck in the intermediate queue, an abandoned one) hands the worker
    jobs of the queue's class, not ones the worker ran."""
    store = RecordingStore()
    queue, worker, redis = setup(store)
    job_id = queue.enqueue(ROWS)
    job = queue.rq_queue.fetch_job(job_id)
    queue.rq_queue.remove(job_id)
    worker.handle_job_failure(job, queue.rq_queue, exc_string="Job was stuck in intermediate queue.")
    drain(build_worker(Settings(job_retry_intervals=(0, 0)), redis, store, WorkerMetrics()))
    assert store.written == ROWS
    assert queue.status().failed == 0
