"""Builds the API through its factory with fakes: fakeredis behind the real queue, a fake store."""

from __future__ import annotations

import dataclasses

import fakeredis
import falcon.testing

from api.app import create_app
from common.metrics import ApiMetrics
from common.queue import BatchQueue
from common.log_store import LogLine, SeriesEntry, StoreUnavailable
from common.partitions import bucket_of
from common.row_keys import line_ids
from common.settings import Settings


SEED_CONTAINER = ("default", "nginx-deployment-abcde", "nginx")


@dataclasses.dataclass
class FakeStore:
    """The LogStore protocol over lines held in memory, with the same keys, order and inclusive
    bounds as Cassandra (tests/integration/test_store_contract.py runs the same cases on both).
    `rows` are (ts_ns, log) lines of `container`; `add` puts lines anywhere, with ids in the order
    added; `write` keys rows as the real store does. `down` makes every call fail as an
    unreachable Cassandra does."""

    rows: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    down: str | None = None
    container: tuple[str, str, str] = SEED_CONTAINER
    bucket_seconds: int = 3600
    reads: list[tuple] = dataclasses.field(default_factory=list)
    lines: dict[tuple, list[tuple]] = dataclasses.field(default_factory=dict)
    # (bucket, namespace, pod, container, stream, sorted label items) of every line written or added.
    series: set[tuple] = dataclasses.field(default_factory=set)
    _next_id: int = 0

    def __post_init__(self) -> None:
        for ts_ns, log in self.rows:
            self.add(*self.container, ts_ns, log)

    def add(self, namespace, pod_name, container_name, ts_ns, log, stream=None, labels=None) -> None:
        self._next_id += 1
        bucket = bucket_of(ts_ns, self.bucket_seconds)
        partition = (namespace, pod_name, container_name, bucket)
        self.lines.setdefault(partition, []).append((ts_ns, self._next_id, log, stream))
        self.series.add((bucket, namespace, pod_name, container_name, stream, tuple(sorted((labels or {}).items()))))

    def write(self, rows) -> int:
        self._check()
        touched = set()
        for row, line_id in zip(rows, line_ids(rows)):
            partition = (row.namespace, row.pod_name, row.container_name, bucket_of(row.ts_ns, self.bucket_seconds))
            lines = self.lines.setdefault(partition, [])
            lines[:] = [line for line in lines if line[:2] != (row.ts_ns, line_id)]  # an upsert, as in CQL
            lines.append((row.ts_ns, line_id, row.log, row.stream))
            touched.add(partition)
            self.series.add((partition[3], *partition[:3], row.stream, tuple(sorted((row.labels or {}).items()))))
        return len(touched)

    def ping(self, timeout: float) -> None:
        self._check()

    def close(self) -> None:
        pass

    def read_range(self, partition, low, high, *, direction, page_size, first_page_size=None):
        self._check()
        if not all(-(2**63) <= value < 2**63 for value in (*low, *high)):
            raise TypeError("bigint out of range")  # as the driver does when it binds such a bound
        self.reads.append((*partition, low, high, direction))
        namespace, pod_name, container_name, _ = partition
        found = [LogLine(ts_ns, pod_name, container_name, line_id, log, stream)
                 for ts_ns, line_id, log, stream in sorted(self.lines.get(tuple(partition), []))
                 if low <= (ts_ns, line_id) <= high]
        return found[::-1] if direction.backward else found

    def containers_in_buckets(self, namespace, pod_name, buckets):
        self._check()
        return [
            sorted({(p[1], p[2]) for p in self.lines
                    if p[0] == namespace and p[3] == bucket and pod_name in (None, p[1])})
            for bucket in buckets
        ]

    def namespaces_in_buckets(self, buckets):
        self._check()
        return [sorted({p[0] for p in self.lines if p[3] == bucket}) for bucket in buckets]

    def series_in_buckets(self, buckets):
        self._check()
        return [
            sorted((SeriesEntry(namespace, pod, container, stream or None, dict(labels))
                    for bucket_, namespace, pod, container, stream, labels in self.series if bucket_ == bucket),
                   key=lambda entry: entry.key)
            for bucket in buckets
        ]

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable(self.down)


@dataclasses.dataclass
class Harness:
    client: falcon.testing.TestClient
    queue: BatchQueue
    store: FakeStore
    redis: fakeredis.FakeRedis
    redis_server: fakeredis.FakeServer


def build(settings: Settings | None = None, store: FakeStore | None = None) -> Harness:
    settings = settings or Settings()
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeRedis(server=server)
    queue = BatchQueue(redis, settings)
    store = store or FakeStore()
    app = create_app(settings, queue, store, ApiMetrics(queue.status))
    return Harness(falcon.testing.TestClient(app), queue, store, redis, server)
