"""The Redis queue between the front end and the workers, built on RQ.

A batch is stored once, compactly (its lines by container as msgpack columns, then zstd level 1),
under a payload key of its own; the RQ job carries only that key. Payload and job are written in
one MULTI/EXEC, so Redis holds either both or neither when the API answers. This keeps RQ's own
zlib-6 compression of job data (slower than decoding the batch) off the hot path.

The payload, deleted only once Cassandra holds the batch, is the source of truth: a payload whose
job is in no queue or registry (RQ can lose track of a job whose worker was killed between taking
it and marking it started) is queued again by `requeue_orphans`.

Anyone who can write to Redis can write a job hash, and a worker holds the Cassandra credentials:
jobs are JSON (RQ's default, pickle, runs code while loading), and a worker runs only what
`check_job` accepts: write_batch on the payload key of the job's own id. Callbacks and webhooks
named in a hash are ignored (`BatchJob`). A refused job's batch is queued again under a new id
(`rescue_payload`), so a job of the pickle era (it held only its payload key) loses nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import time
import uuid
from collections.abc import Callable, Sequence

import msgspec
import redis
import zstandard
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry as RedisRetry
from redis.sentinel import Sentinel
from rq import Queue, Retry, Worker
from rq.exceptions import DeserializationError
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import as_text

from common.container_lines import ContainerLines, QueuedLines, containers_of, group_rows
from common.records import LogRow
from common.redis_keys import PAYLOAD_KEY_PREFIX, claim_key_prefix, payload_key_prefix
from common.settings import Settings
from common.timestamps import NS_PER_SECOND, now_ns

JOB_FUNCTION = "workers.jobs.write_batch"
# Loads data, never code. Jobs written with RQ's default (pickle) are refused, not unpickled.
JOB_SERIALIZER = JSONSerializer
_ZSTD_LEVEL = 1
# Failed jobs (and their payloads) are kept for operators to requeue; RQ's maximum is a year.
FAILED_JOB_TTL_SECONDS = 365 * 86400
# The high-water check reuses the queue length that the last enqueue read in its own MULTI/EXEC;
# it asks Redis again (LLEN) only when that is older than this, or at or above the mark.
QUEUE_LENGTH_MAX_AGE_SECONDS = 1.0
# A claim list (claim_queued) outlives its worker's last beat by this much; the worker beats every
# 10 s (workers.runner). Then its jobs are orphans, which the next maintenance pass queues again.
CLAIM_TTL_SECONDS = 30


# redis-py names the failing command of a pipeline with its arguments: a payload's bytes.
_PIPELINE_COMMAND = re.compile(r"^Command # \d+ \(.*\) of pipeline caused error: ", re.DOTALL)
_MAX_CAUSE_CHARACTERS = 300


def describe_redis_error(error: redis.RedisError) -> str:
    """"Redis: <error type>: <cause>", never the data of the command that failed."""
    cause = _PIPELINE_COMMAND.sub("", str(error))
    cause = "".join(c if c.isprintable() else "?" for c in cause)[:_MAX_CAUSE_CHARACTERS]
    return f"Redis: {type(error).__name__}: {cause}"


class QueueUnavailable(Exception):
    """Redis did not answer within its timeout or refused the write (e.g. maxmemory reached)."""


class QueueFull(Exception):
    """The queue holds more batches than the high-water mark: ingest must back off."""


class RefusedJob(Exception):
    """A job hash this queue did not write: it is not run, and goes to the failed registry."""


class BatchJob(Job):
    """An RQ job whose hash is untrusted input: the callbacks and webhooks it may name are never
    imported, called or sent (RQ would import any dotted name found there). Ours set none."""

    @property
    def success_callback(self):
        return None

    @property
    def failure_callback(self):
        return None

    @property
    def stopped_callback(self):
        return None

    def send_webhooks(self, status, *, exc_string=None) -> None:
        return None


class _Payload(msgspec.Struct, array_like=True):
    enqueued_at_ns: int
    # Payloads queued by earlier versions hold their lines here, one LogRow each; later ones
    # leave it empty and hold them by container (common.container_lines), a third of the cost
    # to decode.
    rows: list[LogRow] = msgspec.field(default_factory=list)
    containers: list[ContainerLines] = msgspec.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class QueuedBatch:
    enqueued_at_ns: int
    lines: QueuedLines

    @property
    def rows(self) -> list[LogRow]:
        return list(self.lines)


@dataclasses.dataclass(frozen=True)
class ClaimedBatch:
    """A queued job taken by a running job to be written with its own batch (claim_queued);
    `batch` is None when its payload is gone (a job re-queued after it was written)."""

    job_id: str
    batch: QueuedBatch | None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Payload)


def encode_payload(rows: Sequence[LogRow], enqueued_at_ns: int) -> bytes:
    return zstandard.compress(_encoder.encode(_Payload(enqueued_at_ns, [], containers_of(rows))), _ZSTD_LEVEL)


def decode_payload(data: bytes) -> QueuedBatch:
    payload = _decoder.decode(zstandard.decompress(data))
    containers = group_rows(payload.rows) if payload.rows else payload.containers
    return QueuedBatch(payload.enqueued_at_ns, QueuedLines(containers))


def decoded_size(data: bytes) -> int:
    """A queued payload's size once decompressed, from its zstd frame header (encode_payload
    writes it; a frame without it counts as its compressed size times the worst usual ratio)."""
    size = zstandard.frame_content_size(data)
    return size if size >= 0 else len(data) * 16


def _count_within_bytes(payloads: Sequence[bytes | None], max_bytes: int) -> int:
    """How many leading payloads have decoded sizes summing to at most max_bytes, the first always
    (a payload already gone counts as nothing)."""
    total = 0
    for index, data in enumerate(payloads):
        total += 0 if data is None else decoded_size(data)
        if index and total > max_bytes:
            return index
    return len(payloads)


def connect_redis(settings: Settings) -> redis.Redis:
    """A client whose every call is bounded by the configured timeout (no silent retries). With
    REDIS_SENTINELS, a client of the primary the Sentinels name: after a failover its next
    connection asks them again, so it follows the promoted replica by itself."""
    bounds = {"socket_timeout": settings.redis_timeout_seconds,
              "socket_connect_timeout": settings.redis_timeout_seconds,
              "retry": RedisRetry(NoBackoff(), 0), "health_check_interval": 30}
    if not settings.redis_sentinels:
        return redis.Redis.from_url(settings.redis_url, password=settings.redis_password or None, **bounds)
    from_url = parse_url(settings.redis_url)
    sentinels = Sentinel(list(settings.redis_sentinels), socket_timeout=settings.redis_timeout_seconds,
                         socket_connect_timeout=settings.redis_timeout_seconds,
                         sentinel_kwargs={"password": settings.redis_sentinel_password or None})
    return sentinels.master_for(settings.redis_sentinel_master, db=from_url.get("db", 0),
                                password=from_url.get("password") or settings.redis_password or None, **bounds)


@dataclasses.dataclass(frozen=True)
class QueueStatus:
    queued: int
    started: int
    failed: int
    workers: int = 0
    oldest_wait_seconds: float = 0.0  # how long the batch at the head of the queue has waited


class BatchQueue:
    def __init__(self, connection: redis.Redis, settings: Settings, *,
                 monotonic: Callable[[], float] = time.monotonic):
        self._redis = connection
        self._settings = settings
        self.rq_queue = Queue(settings.queue_name, connection=connection,
                              job_class=BatchJob, serializer=JOB_SERIALIZER)
        self._retry_intervals = list(settings.job_retry_intervals)
        self._payload_prefix = payload_key_prefix(settings.queue_name)
        self._claim_prefix = claim_key_prefix(settings.queue_name)
        self._monotonic = monotonic
        # (batches queued, monotonic() when read); the mark itself forces a first LLEN.
        self._known_length = (settings.queue_high_water_mark, 0.0)

    # --- producer side (API) ---

    def enqueue(self, rows: Sequence[LogRow]) -> str:
        """Queue one batch; returns once Redis has acknowledged payload and job together.

        One round trip under load: the MULTI/EXEC that stores payload and job also reads the queue
        length for the next call's high-water check (see QUEUE_LENGTH_MAX_AGE_SECONDS).
        """
        try:
            self._refuse_above_high_water_mark()
            job_id = uuid.uuid4().hex
            data = encode_payload(rows, now_ns())
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.multi()
                pipe.set(self._payload_prefix + job_id, data)
                self._enqueue_job(job_id, pipe)
                pipe.llen(self.rq_queue.key)
                length = pipe.execute()[-1]
            self._known_length = (length, self._monotonic())
            self._wait_for_replicas()
            return job_id
        except redis.RedisError as error:
            raise QueueUnavailable(describe_redis_error(error)) from error

    def _wait_for_replicas(self) -> None:
        """With REDIS_WAIT_REPLICAS, the batch is acknowledged only once that many replicas hold it:
        Redis replicates asynchronously, and a failover to a replica without it would lose it. A
        batch not confirmed in time stays queued but unacknowledged (503): the client sends it again,
        and the second copy is stored under the same keys (README, identity rule)."""
        wanted = self._settings.redis_wait_replicas
        if not wanted:
            return
        timeout_ms = int(self._settings.redis_timeout_seconds * 500)  # half the socket's timeout
        confirmed = self._redis.wait(wanted, timeout_ms)
        if confirmed < wanted:
            raise QueueUnavailable(f"Redis: {confirmed} of the {wanted} replica(s) REDIS_WAIT_REPLICAS asks for "
                                   f"confirmed the batch within {timeout_ms} ms")

    def _refuse_above_high_water_mark(self) -> None:
        length, read_at = self._known_length
        mark = self._settings.queue_high_water_mark
        if length < mark and self._monotonic() - read_at < QUEUE_LENGTH_MAX_AGE_SECONDS:
            return
        length = self.rq_queue.count
        self._known_length = (length, self._monotonic())
        if length >= mark:
            raise QueueFull(f"{self._settings.queue_name} holds >= {mark} batches")

    def _enqueue_job(self, job_id: str, pipeline, at_front: bool = False) -> None:
        self.rq_queue.enqueue_call(
            JOB_FUNCTION,
            args=(self._payload_prefix + job_id,),
            job_id=job_id,
            timeout=self._settings.job_timeout_seconds,
            result_ttl=0,
            failure_ttl=FAILED_JOB_TTL_SECONDS,
            retry=Retry(max=len(self._retry_intervals), interval=self._retry_intervals),
            pipeline=pipeline,
            at_front=at_front,
        )

    # --- consumer side (worker) ---

    def check_job(self, job: Job) -> None:
        """Raise RefusedJob unless the job is write_batch(<payload key of its own id>), as enqueued
        here. Reads the job's data with JSON only, and imports nothing."""
        try:
            func_name, instance, args, kwargs = job.func_name, job.instance, job.args, job.kwargs
        except DeserializationError:
            raise RefusedJob("job data is not JSON (pickled, as RQ writes by default?)") from None
        own_key = self._payload_prefix + job.id
        if (func_name != JOB_FUNCTION or instance is not None or kwargs != {}
                or not isinstance(args, list | tuple) or list(args) != [own_key]):
            raise RefusedJob(f"only {JOB_FUNCTION}('{self._payload_prefix}<job id>') runs here, "
                             f"not {str(func_name)[:100]!r} with these arguments")

    def rescue_payload(self, job_id: str) -> str | None:
        """Queue the batch stored under a refused job's id again, as a new job; its id, or None.

        The payload moves to the new id (RENAME) in the MULTI/EXEC that enqueues the new job, so
        the refused job, kept in the failed registry, no longer owns it."""
        old_key = self._payload_prefix + job_id
        if not self._redis.exists(old_key):
            return None
        new_id = uuid.uuid4().hex
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.multi()
            pipe.rename(old_key, self._payload_prefix + new_id)
            self._enqueue_job(new_id, pipe)
            pipe.execute()
        return new_id

    def load_payload(self, payload_key: str) -> QueuedBatch | None:
        data = self._redis.get(payload_key)
        return None if data is None else decode_payload(data)

    def delete_payload(self, payload_key: str) -> None:
        self._redis.delete(payload_key)

    def job_id_of(self, payload_key: str) -> str:
        """The id of the job that owns a payload key (check_job accepts only its own)."""
        return payload_key.removeprefix(self._payload_prefix)

    # --- several batches per write (WORKER_BATCHES_PER_WRITE) ---

    def claim_queued(self, owner_id: str, count: int, max_bytes: int | None = None) -> list[ClaimedBatch]:
        """Take up to `count` jobs waiting at the head of the queue, for the running job `owner_id`
        to write with its own batch; only jobs already waiting, never waiting for more.

        They move (LMOVE, in one MULTI/EXEC that also sets the list's TTL) from RQ's queue to the
        owner's claim list, which counts as tracked (requeue_orphans) while its worker beats
        (refresh_claim). A job check_job would refuse is put back at the head of the queue for RQ
        to run, that is to refuse: claiming never bypasses the check.

        With `max_bytes`, the claimed payloads hold at most that many bytes decoded (their zstd
        frames say so before decoding: what bounds a write's memory), except that the first is
        always taken; the jobs past it go back to the queue's head, in their order."""
        if count <= 0:
            return []
        key = self._claim_prefix + owner_id
        with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(count):
                pipe.lmove(self.rq_queue.key, key, "LEFT", "RIGHT")
            pipe.expire(key, CLAIM_TTL_SECONDS)
            moved = [as_text(job_id) for job_id in pipe.execute()[:-1] if job_id is not None]
        if not moved:
            return []
        accepted = []
        for job_id, job in zip(moved, BatchJob.fetch_many(moved, self._redis, serializer=JOB_SERIALIZER)):
            try:
                if job is None:
                    raise RefusedJob("no job hash")
                self.check_job(job)
                accepted.append(job_id)
            except RefusedJob:
                pass
        payloads = self._redis.mget([self._payload_prefix + job_id for job_id in accepted]) if accepted else []
        if max_bytes is not None:
            taken = _count_within_bytes(payloads, max_bytes)
            accepted, payloads = accepted[:taken], payloads[:taken]
        kept = set(accepted)
        if len(kept) < len(moved):  # refused, or past the byte bound: back in the order they were queued
            self._unclaim(owner_id, [job_id for job_id in moved if job_id not in kept])
        return [ClaimedBatch(job_id, None if data is None else decode_payload(data))
                for job_id, data in zip(accepted, payloads)]

    def refresh_claim(self, owner_id: str) -> None:
        """The owner's worker is alive: its claim list lives CLAIM_TTL_SECONDS more."""
        self._redis.expire(self._claim_prefix + owner_id, CLAIM_TTL_SECONDS)

    def release_claimed(self, owner_id: str, claimed: Sequence[ClaimedBatch]) -> None:
        """Put claimed jobs back at the head of the queue, in their order (their write failed or
        was not attempted), and drop the claim list. LMOVE moves only what the list still holds:
        a job whose claim expired and that was queued again is not queued twice."""
        key = self._claim_prefix + owner_id
        with self._redis.pipeline(transaction=True) as pipe:
            for _ in claimed:
                pipe.lmove(key, self.rq_queue.key, "RIGHT", "LEFT")
            pipe.delete(key)
            pipe.execute()

    def _unclaim(self, owner_id: str, job_ids: Sequence[str]) -> None:
        key = self._claim_prefix + owner_id
        with self._redis.pipeline(transaction=True) as pipe:
            for job_id in reversed(job_ids):
                pipe.lrem(key, 1, job_id)
                pipe.lpush(self.rq_queue.key, job_id)
            pipe.execute()

    def finish_written(self, payload_key: str | None, owner_id: str, claimed: Sequence[ClaimedBatch]) -> None:
        """Every batch of one write is in Cassandra: delete the owner's payload (None: a later write
        of the job, without it), and the claimed jobs' payloads, job hashes and claim list, in one
        MULTI/EXEC. (RQ finishes the owner's job itself; a claimed job never ran in RQ, so it has
        nothing else to clean up.)"""
        if not claimed:
            if payload_key is not None:
                self.delete_payload(payload_key)
            return
        own = [] if payload_key is None else [payload_key]
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(*own, *(self._payload_prefix + c.job_id for c in claimed),
                        *(BatchJob.key_for(c.job_id) for c in claimed))
            pipe.delete(self._claim_prefix + owner_id)
            pipe.execute()

    # --- operations ---

    def ping(self) -> None:
        try:
            self._redis.ping()
        except redis.RedisError as error:
            raise QueueUnavailable(describe_redis_error(error)) from error

    def status(self) -> QueueStatus:
        try:
            return QueueStatus(
                queued=self.rq_queue.count,
                started=StartedJobRegistry(queue=self.rq_queue).count,
                failed=FailedJobRegistry(queue=self.rq_queue).count,
                workers=Worker.count(queue=self.rq_queue),
                oldest_wait_seconds=self._oldest_wait_seconds(),
            )
        except redis.RedisError as error:
            raise QueueUnavailable(describe_redis_error(error)) from error

    def _oldest_wait_seconds(self) -> float:
        """Since when the next batch a worker takes has been waiting (0 when none waits): how far
        behind the workers are, readable from the API (their own lag histogram is on their port)."""
        head = self.rq_queue.get_job_ids(0, 1)
        job = self.rq_queue.fetch_job(head[0]) if head else None
        if job is None or job.enqueued_at is None:
            return 0.0
        enqueued_at = job.enqueued_at
        if enqueued_at.tzinfo is None:
            enqueued_at = enqueued_at.replace(tzinfo=datetime.timezone.utc)
        return max(0.0, now_ns() / NS_PER_SECOND - enqueued_at.timestamp())

    def requeue_orphans(self) -> list[str]:
        """Queue again every batch whose payload is stored but whose job RQ no longer tracks.

        A job caught between two registries (being dequeued) may be queued twice: harmless, since
        writes are idempotent and a run that finds its payload gone does nothing.
        """
        tracked = self._tracked_job_ids()
        candidates = [job_id for job_id in self._payload_job_ids() if job_id not in tracked]
        if candidates:  # read the registries once more: a job may have moved between them meanwhile
            tracked = self._tracked_job_ids()
        orphans = [job_id for job_id in candidates if job_id not in tracked]
        for job_id in orphans:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.multi()
                self._enqueue_job(job_id, pipe)
                pipe.execute()
        return orphans

    def requeue_stranded(self) -> list[str]:
        """Queue again, first in line, every job a worker died with between RQ listing it as started
        (prepare_execution) and marking it STARTED (prepare_job_execution); returns their ids.

        RQ's abandoned-job clean-up retries only STARTED jobs and drops the others' entries, and
        its intermediate-queue clean-up takes such a job back a minute after first seeing it there:
        90 s or more in all. Here it is taken back once its execution expired, that is once no
        worker has beaten for it for the heartbeat TTL. Reads the registry without RQ's clean-up,
        which would drop the entries first. A worker that was only stalled that long may still run
        the job too: harmless, as for orphans.
        """
        started = StartedJobRegistry(queue=self.rq_queue)
        expired = self._redis.zrangebyscore(started.key, 0, time.time())
        intermediate = IntermediateQueue(self.rq_queue.key, connection=self._redis)
        stranded = []
        for entry in expired:
            job_id = started.parse_job_id(entry.decode())
            job = self.rq_queue.fetch_job(job_id)
            if job is None or job.get_status(refresh=False) == JobStatus.STARTED:
                continue  # gone, or RQ's own clean-up retries it
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.multi()
                pipe.zrem(started.key, entry)
                pipe.lrem(intermediate.key, 0, job_id)
                pipe.delete(intermediate.get_first_seen_key(job_id))
                self._enqueue_job(job_id, pipe, at_front=True)
                pipe.execute()
            stranded.append(job_id)
        return stranded

    def unwritten_batches(self) -> int:
        """Batches acknowledged but not yet in Cassandra (their payloads), whatever RQ says."""
        return len(self._payload_job_ids())

    def _payload_job_ids(self) -> list[str]:
        prefix = self._payload_prefix.encode()
        return [key[len(prefix):].decode() for key in self._redis.scan_iter(match=prefix + b"*", count=1000)]

    def _tracked_job_ids(self) -> set[str]:
        q = self.rq_queue
        return {
            *q.get_job_ids(),
            *IntermediateQueue(q.key, connection=self._redis).get_job_ids(),
            *StartedJobRegistry(queue=q).get_job_ids(),
            *ScheduledJobRegistry(queue=q).get_job_ids(),
            *FailedJobRegistry(queue=q).get_job_ids(),
            *self._claimed_job_ids(),  # after the queue: a job being claimed is seen in one of them
        }

    def _claimed_job_ids(self) -> list[str]:
        keys = list(self._redis.scan_iter(match=self._claim_prefix.encode() + b"*", count=1000))
        if not keys:
            return []
        with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.lrange(key, 0, -1)
            return [as_text(job_id) for ids in pipe.execute() for job_id in ids]

    def requeue_failed(self) -> int:
        """Put every failed batch back on the queue (after its cause is fixed)."""
        registry = self.rq_queue.failed_job_registry  # this queue's job class and serializer
        job_ids = registry.get_job_ids()
        for job_id in job_ids:
            registry.requeue(job_id)
        return len(job_ids)
