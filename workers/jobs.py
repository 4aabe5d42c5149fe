"""The job a worker runs for each queued batch: payload from Redis -> rows into Cassandra."""

from __future__ import annotations

import dataclasses
import logging
import time

from common.metrics import WorkerMetrics
from common.queue import BatchQueue
from common.log_store import LogStore
from common.timestamps import now_ns

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class JobContext:
    """Long-lived, per-process collaborators handed to every job (one Cassandra session)."""

    queue: BatchQueue
    store: LogStore
    metrics: WorkerMetrics


def write_batch(context: JobContext, payload_key: str) -> int:
    """Write one queued batch; the payload is deleted only after Cassandra acknowledged every row.

    Raises on any failure so RQ retries the job (with back-off) and, once retries are spent,
    keeps it in the failed registry with its payload: nothing is dropped silently.
    """
    batch = context.queue.load_payload(payload_key)
    if batch is None:
        # The payload goes only after a successful write: this is a re-run of a finished job.
        context.metrics.batches.labels("already_written").inc()
        log.info("event=write_batch_skipped reason=payload_gone key=%s", payload_key)
        return 0
    started = time.perf_counter()
    partitions = context.store.write(batch.rows)
    elapsed = time.perf_counter() - started
    context.queue.delete_payload(payload_key)
    lag = max(now_ns() - batch.enqueued_at_ns, 0) / 1e9
    m = context.metrics
    m.rows_written.inc(len(batch.rows))
    m.batches.labels("written").inc()
    m.write_latency.observe(elapsed)
    m.lag.observe(lag)
    m.last_write.set_to_current_time()
    log.info(
        "event=write_batch rows=%d partitions=%d ms=%.1f lag_ms=%.0f",
        len(batch.rows), partitions, elapsed * 1000, lag * 1000,
    )
    return len(batch.rows)
