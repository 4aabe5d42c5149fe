"""/write: POST ingests a fluent-bit batch into the queue; GET is the health probe (as in the seed)."""

from __future__ import annotations

import concurrent.futures
import logging
import zlib

import falcon

from api.errors import unavailable
from common.metrics import ApiMetrics
from common.queue import BatchQueue, QueueFull, QueueUnavailable
from common.records import BatchDecoder, DecodedBatch, InvalidBody
from common.settings import Settings
from common.store import CassandraStore, StoreUnavailable

log = logging.getLogger(__name__)

HEALTH_DEADLINE_SECONDS = 2.0


class WriteResource:
    def __init__(self, settings: Settings, queue: BatchQueue, store: CassandraStore, metrics: ApiMetrics):
        self._settings = settings
        self._queue = queue
        self._store = store
        self._metrics = metrics
        self._decoder = BatchDecoder(settings.max_line_bytes, settings.fluent_bit_date_key,
                                     settings.fluent_bit_offset_key, settings.fluent_bit_path_key)
        # Health checks run here so that a hanging dependency cannot hold the probe past its deadline.
        self._checks = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")

    # --- ingest ---

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self._read_body(req)
        if (req.get_header("Content-Encoding") or "").strip().lower() in ("gzip", "x-gzip"):
            body = self._gunzip(body)
        batch = self._decode(body, req.content_type)
        if batch.rows:
            self._enqueue(batch)
        self._metrics.records_accepted.inc(len(batch.rows))
        self._metrics.records_rejected.inc(batch.rejected)
        self._metrics.lines_truncated.inc(batch.truncated_lines)
        resp.media = {
            "accepted": len(batch.rows),
            "rejected": batch.rejected,
            "truncated_lines": batch.truncated_lines,
            "errors": [{"index": e.index, "reason": e.reason} for e in batch.errors],
        }

    def _read_body(self, req: falcon.Request) -> bytes:
        limit = self._settings.max_body_bytes
        too_large = falcon.HTTPContentTooLarge(
            title="Body too large",
            description=f"a /write body may hold at most {limit} bytes (MAX_BODY_BYTES); send smaller batches",
        )
        if req.content_length is not None and req.content_length > limit:
            raise too_large
        body = req.bounded_stream.read(limit + 1)
        if len(body) > limit:
            raise too_large
        return body

    def _gunzip(self, body: bytes) -> bytes:
        """Inflate a `compress gzip` body, every member of it (RFC 1952 allows several back to back),
        stopping at MAX_BODY_BYTES in all (a gzip bomb gets 413)."""
        limit = self._settings.max_body_bytes
        inflated: list[bytes] = []
        room, rest = limit + 1, body
        try:
            while True:
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                data = inflater.decompress(rest, room)
                inflated.append(data)
                room -= len(data)
                if room <= 0:
                    raise falcon.HTTPContentTooLarge(
                        title="Body too large",
                        description=f"the gzip body inflates past {limit} bytes (MAX_BODY_BYTES); send smaller batches",
                    )
                if not inflater.eof:
                    raise falcon.HTTPBadRequest(title="Invalid body", description="truncated gzip body")
                rest = inflater.unused_data
                if not rest.strip(b"\0"):  # trailing zero padding after the last member is allowed
                    return b"".join(inflated)
        except zlib.error as error:
            raise falcon.HTTPBadRequest(title="Invalid body", description=f"not valid gzip: {error}") from None

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

    def _enqueue(self, batch: DecodedBatch) -> None:
        retry_after = self._settings.retry_after_seconds
        try:
            self._queue.enqueue(batch.rows)
        except QueueFull as error:
            raise unavailable("Queue", f"ingest is backed up ({error}); retry later", retry_after) from None
        except QueueUnavailable as error:
            log.warning("event=enqueue_failed error=%s", error)
            raise unavailable("Redis", str(error), retry_after) from None

    # --- health probe ---

    def on_get_ready(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Ingest readiness: Redis answers. Cassandra is not needed to accept logs (the queue
        absorbs its outages), so an orchestrator should route fluent-bit here on this alone."""
        future = self._checks.submit(self._queue.ping)
        try:
            future.result(timeout=HEALTH_DEADLINE_SECONDS)
            resp.media = {"ready": True, "detail": ""}
        except concurrent.futures.TimeoutError:
            resp.media = {"ready": False, "detail": f"redis: no answer within {HEALTH_DEADLINE_SECONDS:.0f}s"}
            resp.status = falcon.HTTP_503
        except QueueUnavailable as error:
            resp.media = {"ready": False, "detail": f"redis: {error}"}
            resp.status = falcon.HTTP_503

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks = {
            "redis": self._checks.submit(self._queue.ping),
            "cassandra": self._checks.submit(self._store.ping, HEALTH_DEADLINE_SECONDS / 2),
        }
        done, _ = concurrent.futures.wait(checks.values(), timeout=HEALTH_DEADLINE_SECONDS)
        failures = []
        for name, future in checks.items():
            if future not in done:
                failures.append(f"{name}: no answer within {HEALTH_DEADLINE_SECONDS:.0f}s")
            elif (error := future.exception()) is not None:
                if not isinstance(error, (QueueUnavailable, StoreUnavailable)):
                    log.error("event=health_check_error dependency=%s error=%r", name, error)
                failures.append(f"{name}: {error}")
        resp.media = {"healthy": not failures, "detail": "; ".join(failures)}
        if failures:
            resp.status = falcon.HTTP_503
