"""The Redis queue between the front end and the workers, built on RQ.

A batch is stored once, compactly (msgpack, then zstd level 1), under a payload key of its own;
the RQ job carries only that key. Payload and job are written in one MULTI/EXEC, so Redis holds
either both or neither when the API answers. This keeps RQ's own zlib-6 compression of job data
(slower than decoding the batch) off the hot path.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence

import msgspec
import redis
import zstandard
from redis.backoff import NoBackoff
from redis.retry import Retry as RedisRetry
from rq import Queue, Retry
from rq.registry import FailedJobRegistry, StartedJobRegistry

from common.records import LogRow
from common.settings import Settings
from common.timestamps import now_ns

JOB_FUNCTION = "workers.jobs.write_batch"
PAYLOAD_KEY_PREFIX = "kube-insight:payload:"
_ZSTD_LEVEL = 1
# Failed jobs (and their payloads) are kept for operators to requeue; RQ's maximum is a year.
FAILED_JOB_TTL_SECONDS = 365 * 86400


class QueueUnavailable(Exception):
    """Redis did not answer within its timeout or refused the write (e.g. maxmemory reached)."""


class QueueFull(Exception):
    """The queue holds more batches than the high-water mark: ingest must back off."""


class _Payload(msgspec.Struct, array_like=True):
    enqueued_at_ns: int
    rows: list[LogRow]


@dataclasses.dataclass(frozen=True)
class QueuedBatch:
    enqueued_at_ns: int
    rows: list[LogRow]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Payload)


def encode_payload(rows: Sequence[LogRow], enqueued_at_ns: int) -> bytes:
    return zstandard.compress(_encoder.encode(_Payload(enqueued_at_ns, list(rows))), _ZSTD_LEVEL)


def decode_payload(data: bytes) -> QueuedBatch:
    payload = _decoder.decode(zstandard.decompress(data))
    return QueuedBatch(payload.enqueued_at_ns, payload.rows)


def connect_redis(settings: Settings) -> redis.Redis:
    """A client whose every call is bounded by the configured timeout (no silent retries)."""
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        retry=RedisRetry(NoBackoff(), 0),
        health_check_interval=30,
    )


@dataclasses.dataclass(frozen=True)
class QueueStatus:
    queued: int
    started: int
    failed: int


class BatchQueue:
    def __init__(self, connection: redis.Redis, settings: Settings):
        self._redis = connection
        self._settings = settings
        self.rq_queue = Queue(settings.queue_name, connection=connection)
        self._retry_intervals = list(settings.job_retry_intervals)

    # --- producer side (API) ---

    def enqueue(self, rows: Sequence[LogRow]) -> str:
        """Queue one batch; returns once Redis has acknowledged payload and job together."""
        try:
            if self.rq_queue.count >= self._settings.queue_high_water_mark:
                raise QueueFull(
                    f"{self._settings.queue_name} holds >= {self._settings.queue_high_water_mark} batches"
                )
            job_id = uuid.uuid4().hex
            payload_key = PAYLOAD_KEY_PREFIX + job_id
            data = encode_payload(rows, now_ns())
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.multi()
                pipe.set(payload_key, data)
                self.rq_queue.enqueue_call(
                    JOB_FUNCTION,
                    args=(payload_key,),
                    job_id=job_id,
                    timeout=self._settings.job_timeout_seconds,
                    result_ttl=0,
                    failure_ttl=FAILED_JOB_TTL_SECONDS,
                    retry=Retry(max=len(self._retry_intervals), interval=self._retry_intervals),
                    pipeline=pipe,
                )
                pipe.execute()
            return job_id
        except redis.RedisError as error:
            raise QueueUnavailable(f"Redis: {type(error).__name__}: {error}") from error

    # --- consumer side (worker) ---

    def load_payload(self, payload_key: str) -> QueuedBatch | None:
        data = self._redis.get(payload_key)
        return None if data is None else decode_payload(data)

    def delete_payload(self, payload_key: str) -> None:
        self._redis.delete(payload_key)

    # --- operations ---

    def ping(self) -> None:
        try:
            self._redis.ping()
        except redis.RedisError as error:
            raise QueueUnavailable(f"Redis: {type(error).__name__}: {error}") from error

    def status(self) -> QueueStatus:
        try:
            return QueueStatus(
                queued=self.rq_queue.count,
                started=StartedJobRegistry(queue=self.rq_queue).count,
                failed=FailedJobRegistry(queue=self.rq_queue).count,
            )
        except redis.RedisError as error:
            raise QueueUnavailable(f"Redis: {type(error).__name__}: {error}") from error

    def requeue_failed(self) -> int:
        """Put every failed batch back on the queue (after its cause is fixed)."""
        registry = FailedJobRegistry(queue=self.rq_queue)
        job_ids = registry.get_job_ids()
        for job_id in job_ids:
            registry.requeue(job_id)
        return len(job_ids)
