"""POST /loki/api/v1/push: Loki's push API (fluent-bit's `loki` output, Promtail, Grafana Alloy) as a
second front on the same core as POST /write: the same body bounds, decoded rows and queue.

The answers follow what these clients do with them. Promtail and Alloy retry only 429, 5xx and
connection errors and drop a batch on anything else; fluent-bit drops on 400 and retries the rest.
- 204: every entry is queued.
- 400: some entries (or all) can never be stored. The others are queued and the detail is Loki's
  own message (`... total ignored: N out of M`): a retry would be refused the same way.
- 429 + Retry-After: the queue is at its high-water mark (the native API answers 503): the one
  "slow down" every client retries.
- 503 + Retry-After: Redis unavailable (api/errors.py).
- 413 body too large (as sent, inflated, or as its snappy header declares), 415 a Content-Type
  that is neither JSON nor protobuf.
"""

from __future__ import annotations

import falcon

from api.ingest import Ingest
from api.request_body import read_body
from common.loki_push import BodyTooLarge, LokiPushDecoder, UnsupportedContentType, loki_rejection_message
from common.queue import QueueFull
from common.records import DecodedBatch, InvalidBody
from common.settings import Settings

PUSH_PATH = "/loki/api/v1/push"


class LokiPushResource:
    def __init__(self, settings: Settings, ingest: Ingest):
        self._settings = settings
        self._ingest = ingest
        self._decoder = LokiPushDecoder.from_settings(settings)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_body(req, self._settings.max_body_bytes, PUSH_PATH)
        batch = self._decode(body, req.content_type)
        try:
            self._ingest.queue(batch)  # QueueUnavailable: 503 (api/errors.py)
        except QueueFull as error:
            raise falcon.HTTPTooManyRequests(
                title="Queue full", description=f"ingest is backed up ({error}); retry later",
                retry_after=self._settings.retry_after_seconds,
            ) from None
        if batch.rejected:
            raise falcon.HTTPBadRequest(
                title=_rejected_title(batch), description=loki_rejection_message(batch)
            )
        resp.status = falcon.HTTP_204

    def _decode(self, body: bytes, content_type: str | None) -> DecodedBatch:
        try:
            return self._decoder.decode(body, content_type)
        except BodyTooLarge as error:
            raise falcon.HTTPContentTooLarge(title="Body too large", description=str(error)) from None
        except UnsupportedContentType as error:
            raise falcon.HTTPUnsupportedMediaType(title="Unsupported Content-Type", description=str(error)) from None
        except InvalidBody as error:
            raise falcon.HTTPBadRequest(title="Invalid body", description=str(error)) from None


def _rejected_title(batch: DecodedBatch) -> str:
    if batch.rows:
        return f"{batch.rejected} of {batch.received} entries rejected; the other {len(batch.rows)} are queued"
    return f"all {batch.received} entries rejected"
