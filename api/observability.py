"""Request metrics (middleware) and the Prometheus /metrics endpoint."""

from __future__ import annotations

import time

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from common.metrics import ApiMetrics


class RequestMetrics:
    """Counts every request by method, route template (not raw path: bounded cardinality) and status."""

    def __init__(self, metrics: ApiMetrics):
        self._metrics = metrics

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        started = getattr(req.context, "started", None)
        if started is None:
            return
        path = req.uri_template or "unmatched"
        self._metrics.observe_request(req.method, path, resp.status_code, time.perf_counter() - started)


class MetricsResource:
    def __init__(self, metrics: ApiMetrics):
        self._metrics = metrics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = generate_latest(self._metrics.registry)
        resp.content_type = CONTENT_TYPE_LATEST
