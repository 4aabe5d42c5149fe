"""What every ingest front (POST /write, the Loki push) does with a decoded batch: queue its rows
as one job and count them. Each front reads and decodes its own body and words its own answer."""

from __future__ import annotations

from common.metrics import ApiMetrics
from common.queue import BatchQueue
from common.records import DecodedBatch


class Ingest:
    def __init__(self, queue: BatchQueue, metrics: ApiMetrics):
        self._queue = queue
        self._metrics = metrics

    def queue(self, batch: DecodedBatch) -> None:
        """Enqueue the valid rows (none: no job), then count accepted, rejected and truncated.
        QueueFull and QueueUnavailable propagate with nothing counted: nothing was acknowledged."""
        if batch.rows:
            self._queue.enqueue(batch.rows)
        self._metrics.records_accepted.inc(len(batch.rows))
        self._metrics.records_rejected.inc(batch.rejected)
        self._metrics.lines_truncated.inc(batch.truncated_lines)
