"""Health: GET /write (the seed's probe: Redis and Cassandra both answer) and GET /ready (ingest
readiness: Redis answers). Each check runs on a pool of its own, so that a hanging dependency
cannot hold a probe past its deadline."""

from __future__ import annotations

import concurrent.futures
import logging

import falcon

from common.log_store import LogStore, StoreUnavailable
from common.queue import BatchQueue, QueueUnavailable

log = logging.getLogger(__name__)

HEALTH_DEADLINE_SECONDS = 2.0


class HealthResource:
    def __init__(self, queue: BatchQueue, store: LogStore):
        self._queue = queue
        self._store = store
        self._checks = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")

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
