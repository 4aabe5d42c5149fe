"""Builds the API through its factory with fakes: fakeredis behind the real queue, a fake store."""

from __future__ import annotations

import dataclasses

import fakeredis
import falcon.testing

from api.app import create_app
from common.metrics import ApiMetrics
from common.queue import BatchQueue
from common.settings import Settings
from common.store import QueryResult, StoreUnavailable


@dataclasses.dataclass
class FakeStore:
    rows: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    down: str | None = None
    queries: list[tuple] = dataclasses.field(default_factory=list)

    def ping(self, timeout: float) -> None:
        if self.down:
            raise StoreUnavailable(self.down)

    def query(self, namespace, pod_name, container_name, start_ns, end_ns, max_rows) -> QueryResult:
        if self.down:
            raise StoreUnavailable(self.down)
        self.queries.append((namespace, pod_name, container_name, start_ns, end_ns))
        selected = [r for r in self.rows if start_ns <= r[0] <= end_ns]
        return QueryResult(selected[:max_rows], truncated=len(selected) > max_rows)


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
