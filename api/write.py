"""POST /write: a fluent-bit batch, validated, into the queue (GET /write, the probe, is api/health.py)."""

from __future__ import annotations

import falcon

from api.request_body import read_body
from common.metrics import ApiMetrics
from common.queue import BatchQueue
from common.records import BatchDecoder, DecodedBatch, InvalidBody
from common.settings import Settings


class WriteResource:
    def __init__(self, settings: Settings, queue: BatchQueue, metrics: ApiMetrics):
        self._settings = settings
        self._queue = queue
        self._metrics = metrics
        self._decoder = BatchDecoder(settings.max_line_bytes, settings.fluent_bit_date_key,
                                     settings.fluent_bit_offset_key, settings.fluent_bit_path_key)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_body(req, self._settings.max_body_bytes, "/write")
        batch = self._decode(body, req.content_type)
        if batch.rows:
            self._queue.enqueue(batch.rows)  # QueueFull / QueueUnavailable: 503 (api/errors.py)
        self._metrics.records_accepted.inc(len(batch.rows))
        self._metrics.records_rejected.inc(batch.rejected)
        self._metrics.lines_truncated.inc(batch.truncated_lines)
        resp.media = {
            "accepted": len(batch.rows),
            "rejected": batch.rejected,
            "truncated_lines": batch.truncated_lines,
            "errors": [{"index": e.index, "reason": e.reason} for e in batch.errors],
        }

    def _decode(self, body: bytes, content_type: str | None) -> DecodedBatch:
        try:
            batch = self._decoder.decode(body, content_type)
        except InvalidBody as error:
            raise falcon.HTTPBadRequest(title="Invalid body", description=str(error)) from None
        if not batch.rows and batch.rejected:
            self._metrics.records_rejected.inc(batch.rejected)
            reasons = "; ".join(f"record {e.index}: {e.reason}" for e in batch.errors)
            raise falcon.HTTPBadRequest(
                title="No valid record", description=f"all {batch.rejected} records are invalid: {reasons}"
            )
        return batch
