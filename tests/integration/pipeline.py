"""The real pipeline in one process: the app on the real queue and store, and a burst worker."""

from __future__ import annotations

import dataclasses
import json
import uuid

import falcon.testing

from api.app import create_app
from common.metrics import ApiMetrics, WorkerMetrics
from common.queue import BatchQueue, connect_redis
from common.settings import Settings
from common.store import CassandraStore
from workers.runner import build_worker


@dataclasses.dataclass
class Pipeline:
    settings: Settings
    store: CassandraStore
    client: falcon.testing.TestClient
    queue: BatchQueue
    worker_metrics: WorkerMetrics

    def post(self, records) -> falcon.testing.Result:
        body = records if isinstance(records, bytes) else json.dumps(records).encode()
        return self.client.simulate_post("/write", body=body, headers={"Content-Type": "application/json"})

    def send(self, path: str, body: bytes, headers: dict[str, str]) -> falcon.testing.Result:
        """POST `body` with exactly `headers` (another ingest front, e.g. the Loki push)."""
        return self.client.simulate_post(path, body=body, headers=headers)

    def drain(self) -> None:
        """Run a worker until the queue is empty (RQ burst mode), as a deployed worker would."""
        worker = build_worker(self.settings, self.queue.rq_queue.connection, self.store, self.worker_metrics)
        worker.work(burst=True, with_scheduler=False, logging_level="WARNING")

    def query(self, namespace, pod_name, container_name, start_time, end_time) -> falcon.testing.Result:
        return self.client.simulate_get("/query", params={
            "namespace": namespace, "pod_name": pod_name, "container_name": container_name,
            "start_time": start_time, "end_time": end_time,
        })


def build_pipeline(settings: Settings, store: CassandraStore) -> Pipeline:
    queue = BatchQueue(connect_redis(settings), settings)
    app = create_app(settings, queue, store, ApiMetrics(queue.status))
    return Pipeline(settings, store, falcon.testing.TestClient(app), queue, WorkerMetrics())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
