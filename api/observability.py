"""Request metrics (middleware) and the Prometheus /metrics endpoint."""

from __future__ import annotations

import http
import time

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from common.metrics import ApiMetrics


# Label values come from fixed sets only: any token is a valid HTTP method on the wire, and each
# new label value would be a new series kept until restart (/metrics is the liveness probe).
KNOWN_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
_KNOWN_STATUSES = frozenset(status.value for status in http.HTTPStatus)


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"


def status_label(status: int) -> str:
    return str(status) if status in _KNOWN_STATUSES else "other"


class RequestMetrics:
    """Counts every request by method, route template (not raw path) and status, each from a fixed set."""

    def __init__(self, metrics: ApiMetrics):
        self._metrics = metrics

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        self._metrics.in_flight.inc()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        started = getattr(req.context, "started", None)
        if started is None:
            return
        self._metrics.in_flight.dec()
        path = req.uri_template or "unmatched"
        self._metrics.observe_request(method_label(req.method), path, status_label(resp.status_code),
                                      time.perf_counter() - started)


class MetricsResource:
    def __init__(self, metrics: ApiMetrics):
        self._metrics = metrics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = generate_latest(self._metrics.registry)
        resp.content_type = CONTENT_TYPE_LATEST
