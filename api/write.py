"""POST /write: a fluent-bit batch, validated, into the queue (GET /write, the probe, is api/health.py)."""

from __future__ import annotations

import falcon

from api.ingest import Ingest
from api.request_body import read_body
from common.records import BatchDecoder, InvalidBody
from common.settings import Settings


class WriteResource:
    def __init__(self, settings: Settings, ingest: Ingest):
        self._settings = settings
        self._ingest = ingest
        self._decoder = BatchDecoder(settings.max_line_bytes, settings.fluent_bit_date_key,
                                     settings.fluent_bit_offset_key, settings.fluent_bit_path_key)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_body(req, self._settings.max_body_bytes, "/write")
        try:
            batch = self._decoder.decode(body, req.content_type)
        except InvalidBody as error:
            raise falcon.HTTPBadRequest(title="Invalid body", description=str(error)) from None
        self._ingest.queue(batch)  # QueueFull / QueueUnavailable: 503 (api/errors.py)
        if not batch.rows and batch.rejected:
            reasons = "; ".join(f"record {e.index}: {e.reason}" for e in batch.errors)
            raise falcon.HTTPBadRequest(
                title="No valid record", description=f"all {batch.rejected} records are invalid: {reasons}"
            )
        resp.media = {
            "accepted": len(batch.rows),
            "rejected": batch.rejected,
            "truncated_lines": batch.truncated_lines,
            "errors": [{"index": e.index, "reason": e.reason} for e in batch.errors],
        }
