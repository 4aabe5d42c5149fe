"""The job a worker runs for each queued batch: payload from Redis -> rows into Cassandra."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence

import redis

from common import block_merge
from common.merge_candidates import MergeCandidates
from common.metrics import WorkerMetrics
from common.partitions import PartitionKey
from common.queue import BatchQueue, ClaimedBatch, QueuedBatch
from common.log_store import LogStore, StoreConfigError, StoreUnavailable
from common.timestamps import now_ns

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class JobContext:
    """Long-lived, per-process collaborators handed to every job (one Cassandra session)."""

    queue: BatchQueue
    store: LogStore
    metrics: WorkerMetrics
    # The job's own batch and up to this many - 1 others already waiting, in one store.write
    # (WORKER_BATCHES_PER_WRITE): fewer, bigger blocks, and RQ's per-job round trips shared.
    batches_per_write: int = 1
    # ... and those others hold at most this many bytes decoded (WORKER_WRITE_MAX_BYTES): a write's
    # memory stays bounded whatever the batches' sizes.
    write_max_bytes: int | None = None
    # After its own write, a job goes on writing the batches already waiting, batches_per_write at
    # a time, until none waits or it has written this many (WORKER_BATCHES_PER_JOB): RQ's per-job
    # cost (its Redis round trips, ~half a small job's CPU) is shared by every batch written.
    batches_per_job: int = 1
    # ... and it starts no further write once it has run this long (a fraction of the job timeout),
    # or once its worker was asked to stop (SIGTERM: a warm shutdown waits for the running job).
    job_seconds: float = 30.0
    stopping: threading.Event = dataclasses.field(default_factory=threading.Event)
    # The blocks layout with merging on: where a write that made small blocks says so.
    merge_candidates: MergeCandidates | None = None
    merge_after_seconds: int = 0


def write_batch(context: JobContext, payload_key: str) -> int:
    """Write one queued batch, with the batches it claimed from the queue's head; a payload is
    deleted only after Cassandra acknowledged every row of its write.

    Raises on any failure so RQ retries the job (with back-off) and, once retries are spent,
    keeps it in the failed registry with its payload: nothing is dropped silently. A failure
    blamed on one batch is never charged to another: claimed batches go back to the queue's head
    and the job's own batch is written alone, so it fails (or not) on its own rows.

    Then, while batches wait and the job's bounds allow (batches_per_job, job_seconds), it claims
    and writes more of them (_write_waiting). Returns the lines written.
    """
    started = time.monotonic()
    written, rows = _write_own(context, payload_key)
    if written:
        rows += _write_waiting(context, context.queue.job_id_of(payload_key), written, started)
    return rows


def _write_own(context: JobContext, payload_key: str) -> tuple[int, int]:
    """The job's own batch and those it claimed with it: (batches, lines) written."""
    queue = context.queue
    batch = queue.load_payload(payload_key)
    if batch is None:
        # The payload goes only after a successful write: this is a re-run of a finished job.
        context.metrics.batches.labels("already_written").inc()
        log.info("event=write_batch_skipped reason=payload_gone key=%s", payload_key)
        return 0, 0
    owner = queue.job_id_of(payload_key)
    claimed = queue.claim_queued(owner, context.batches_per_write - 1, context.write_max_bytes)
    started = time.perf_counter()
    try:
        batches, partitions, together = _write(context, batch, claimed)
    except BaseException:
        _release(queue, owner, claimed)
        raise
    if not together:
        _release(queue, owner, claimed)
        claimed = []
    return len(batches), _written(context, payload_key, owner, batches, claimed, partitions, started)


def _write_waiting(context: JobContext, owner: str, written: int, started: float) -> int:
    """Claim and write the batches waiting at the queue's head, batches_per_write at a time, while
    any wait and the job's bounds allow; returns the lines written. Such a write is no job's own:
    if it fails, for whatever reason, its batches go back to the queue's head and the job ends
    (its own batch is written); each is then run as its own job, and a failure is charged to
    the batch that causes it."""
    queue, lines = context.queue, 0
    while (written < context.batches_per_job and time.monotonic() - started < context.job_seconds
           and not context.stopping.is_set()):
        claimed = queue.claim_queued(owner, min(context.batches_per_write, context.batches_per_job - written),
                                     context.write_max_bytes)
        if not claimed:
            return lines
        batches = [c.batch for c in claimed if c.batch is not None]
        begun = time.perf_counter()
        try:
            partitions = context.store.write_batches([b.lines for b in batches]) if batches else {}
        except Exception as error:
            _release(queue, owner, claimed)
            log.warning("event=write_waiting_failed batches=%d error=%s: put back, each to run as its own job",
                        len(claimed), error)
            return lines
        except BaseException:
            _release(queue, owner, claimed)
            raise
        written += len(claimed)
        lines += _written(context, None, owner, batches, claimed, partitions, begun)
    return lines


def _written(context: JobContext, payload_key: str | None, owner: str, batches: Sequence[QueuedBatch],
             claimed: Sequence[ClaimedBatch], partitions: dict[PartitionKey, int], started: float) -> int:
    """A write is in Cassandra: its payloads go, small blocks are noted, metrics and the log
    count it. Returns its lines."""
    elapsed = time.perf_counter() - started
    context.queue.finish_written(payload_key, owner, claimed)
    _note_small_blocks(context, partitions)
    _account(context, batches, claimed, elapsed, len(partitions))
    return sum(len(b.lines) for b in batches)


def _write(context: JobContext, batch: QueuedBatch,
           claimed: Sequence[ClaimedBatch]) -> tuple[list[QueuedBatch], dict[PartitionKey, int], bool]:
    """The batches written (the job's own first), the lines written per partition, and whether the
    claimed batches were written with it (False: the job's own batch alone, after a joint write
    failed)."""
    batches = [batch, *(c.batch for c in claimed if c.batch is not None)]
    if len(batches) == 1:
        return batches, context.store.write_batches([batch.lines]), True
    try:
        return batches, context.store.write_batches([b.lines for b in batches]), True
    except (StoreUnavailable, StoreConfigError):
        raise  # not any batch's fault: every job is retried as it stands
    except Exception as error:
        log.warning("event=write_together_failed batches=%d error=%s: writing the job's own batch alone",
                    len(batches), error)
        return [batch], context.store.write_batches([batch.lines]), False


def _note_small_blocks(context: JobContext, lines_per_partition: dict[PartitionKey, int]) -> None:
    """Partitions this write made small blocks in become merge candidates. Best effort: the lines
    are stored either way, and a lost note costs a merge, not a line."""
    if context.merge_candidates is None:
        return
    try:
        context.merge_candidates.note(block_merge.partitions_left_small(lines_per_partition), time.time())
    except redis.RedisError as error:
        log.warning("event=merge_note_failed error=%s", error)


def _release(queue: BatchQueue, owner: str, claimed: Sequence[ClaimedBatch]) -> None:
    if not claimed:
        return
    try:
        queue.release_claimed(owner, claimed)
    except redis.RedisError as error:  # the claim expires: its jobs are orphans, queued again
        log.warning("event=claim_release_failed owner=%s error=%s", owner, error)


def _account(context: JobContext, batches: Sequence[QueuedBatch], claimed: Sequence[ClaimedBatch],
             elapsed: float, partitions: int) -> None:
    m, now = context.metrics, now_ns()
    rows = sum(len(b.lines) for b in batches)
    gone = sum(c.batch is None for c in claimed)
    m.rows_written.inc(rows)
    m.batches.labels("written").inc(len(batches))
    if gone:
        m.batches.labels("already_written").inc(gone)
    m.write_latency.observe(elapsed)
    for b in batches:
        m.lag.observe(max(now - b.enqueued_at_ns, 0) / 1e9)
    m.last_write.set_to_current_time()
    log.info(
        "event=write_batch rows=%d batches=%d partitions=%d ms=%.1f lag_ms=%.0f",
        rows, len(batches), partitions, elapsed * 1000, max(now - batches[0].enqueued_at_ns, 0) / 1e6,
    )
